"""Outcome: the words stored in the audit stream, the exports and RQ's job results stay the words
they were, however a member is printed, on every Python the reactor supports."""

from __future__ import annotations

import json
import logging
import pickle

import pytest

from reactor.jobs.audit import OUTCOMES, AuditRecord, Outcome, export

# The words as earlier releases wrote them into Redis; a member's value may never change.
RECORDED = [
    "written_off",
    "already_written_off",
    "settled_elsewhere",
    "changed",
    "dry_run",
    "skipped",
    "no_match",
    "payment_in_progress",
    "collecting",
    "gone",
    "facts_missing",
    "timed_out",
    "killed",
    "event_missing",
    "stale",
    "rejected",
    "retrying",
    "failed",
    "decided",
    "replayed",
    "purged",
    "recheck_scheduled",
    "recheck_cancelled",
    "held",
    "released",
    "credits_applied",
    "undone",
    "awaits_approval",
    "approved",
    "declined",
    "approval_expired",
    "recovery_candidate",
    "recovered",
    "recovery_failed",
    "user_changed",
]
RESULT_ONLY = ["recheck_gone", "superseded", "swept", "unknown"]


def test_the_words_are_the_stored_ones_and_outcomes_lists_the_recorded_ones():
    assert [outcome.value for outcome in Outcome] == RECORDED + RESULT_ONLY
    assert list(OUTCOMES) == RECORDED
    assert all(OUTCOMES[word] == Outcome(word).meaning for word in RECORDED)
    assert all(outcome.meaning for outcome in Outcome)


@pytest.mark.parametrize("outcome", list(Outcome))
def test_every_way_of_printing_a_member_gives_its_word(outcome):
    word = outcome.value
    assert type(word) is str
    assert str(outcome) == word
    assert f"{outcome}" == word
    assert f"{outcome:>20}" == f"{word:>20}"
    assert format(outcome) == word
    assert "%s" % outcome == word  # noqa: UP031 (the logging module formats this way)
    assert json.dumps(outcome) == json.dumps(word)
    assert outcome == word and hash(outcome) == hash(word) and {word: 1}[outcome] == 1


def test_a_record_is_stored_and_exported_with_the_word(caplog):
    record = AuditRecord(event_id="ev_1", invoice_id="inv_1", outcome=Outcome.WRITTEN_OFF)

    assert record.to_fields()["outcome"] == "written_off"
    assert json.loads(export([record], "jsonl"))["outcome"] == "written_off"
    assert export([record], "csv").splitlines()[1].split(",")[7] == "written_off"
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("decision %s", record.outcome)
    assert caplog.messages == ["decision written_off"]


def test_a_job_result_carries_the_plain_word_so_its_pickle_needs_no_reactor():
    result = Outcome.HELD.result(rule="r", reason="budget")

    assert result == {"outcome": "held", "rule": "r", "reason": "budget"}
    assert type(result["outcome"]) is str
    assert pickle.dumps(result) == pickle.dumps({"outcome": "held", "rule": "r", "reason": "budget"})


def test_reading_a_record_takes_outcomes_this_release_does_not_know():
    fields = {"at": "2026-01-01T00:00:00+00:00", "event_id": "ev", "invoice_id": "inv"}

    known = AuditRecord.from_fields("1-0", {**fields, "outcome": "written_off"})
    newer = AuditRecord.from_fields("2-0", {**fields, "outcome": "written_off_by_a_later_release"})
    without = AuditRecord.from_fields("3-0", fields)

    assert known.outcome is Outcome.WRITTEN_OFF
    assert newer.outcome == "written_off_by_a_later_release" and not isinstance(newer.outcome, Outcome)
    assert without.outcome is Outcome.UNKNOWN
    assert json.loads(export([newer], "jsonl"))["outcome"] == "written_off_by_a_later_release"
    assert newer.to_fields()["outcome"] == "written_off_by_a_later_release"
