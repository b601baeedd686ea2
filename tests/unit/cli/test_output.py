"""What the `reactor` command prints and parses on hostile input: terminal escapes, spreadsheet
formulas, durations and times out of range, and where it finds the Chargebee sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from reactor.cli.helpers import NO_CHARGEBEE, chargebee_settings, duration_seconds, parse_duration, parse_since
from reactor.config import Settings
from reactor.console.deadletters import replay_job_id
from reactor.ingest.events import JOB_ID_SAFE, evaluation_job_id
from reactor.jobs.audit import AuditRecord, export, spreadsheet_cell, visible
from reactor.local.supervisor import sandbox_url_file


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("inv_1", "inv_1"),
        ("a\x1b[31mb", "a\\x1b[31mb"),
        ("bell\x07", "bell\\x07"),
        ("del\x7f", "del\\x7f"),
        ("c1\x85\x9b", "c1\\x85\\x9b"),
        ("bidi\u202eabc", "bidi\\u202eabc"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("line\r\nnext\ttab", "line\\r\\nnext\\ttab"),
        ("é ü 日本", "é ü 日本"),
        ("tag\U000e0041", "tag\\U000e0041"),
    ],
)
def test_visible_escapes_what_is_not_printable_and_keeps_the_rest(raw, shown):
    assert visible(raw) == shown


def test_visible_can_keep_the_lines_of_a_traceback():
    assert visible("Traceback\n\tFile x\x1b[2J\n", keep_newlines=True) == "Traceback\n\tFile x\\x1b[2J\n"


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+cmd", "'+cmd"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\\tx"),
        ("-12.50", "-12.50"),
        ("+3", "+3"),
        ("inv_1", "inv_1"),
        (1250, 1250),
    ],
)
def test_spreadsheet_cells_neither_run_formulas_nor_carry_control_characters(value, cell):
    assert spreadsheet_cell(value) == cell


def test_jsonl_lines_are_printable_ascii_that_read_back_exactly():
    reason = "a\x1b[2J\x7f\u202e\x85é\n"
    line = export([AuditRecord(event_id="ev", invoice_id="inv", outcome="skipped", reason=reason)], "jsonl")

    assert line.endswith("\n") and line[:-1].isascii() and line[:-1].isprintable()
    assert json.loads(line)["reason"] == reason


@pytest.mark.parametrize("text", ["999999d", "99999999999999w", "²d", "١d", "999999999999999999999d"])
def test_durations_out_of_range_or_in_other_digits_are_refused(text):
    with pytest.raises(click.BadParameter):
        parse_duration(text)
    with pytest.raises(click.BadParameter):
        parse_since(text)


def test_durations_take_ascii_digits_in_any_case():
    assert duration_seconds("2H") == 7200
    assert duration_seconds("²d") is None


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00", "1969-12-31T23:59:59Z", "9999-12-31T23:59:59-14:00"])
def test_times_out_of_range_are_refused(text):
    with pytest.raises(click.BadParameter):
        parse_since(text)


def test_the_epoch_and_the_far_future_are_taken():
    assert parse_since("1970-01-01T00:00:00Z").year == 1970
    assert parse_since("9999-12-31T23:59:59Z").year == 9999


@pytest.mark.parametrize("event_id", ["ev_1", "ev.dot.1", "ev:colon", "ev with spaces", "ev_é", "x" * 200])
def test_replay_job_ids_are_rq_job_ids_and_follow_evaluation_job_id(event_id):
    from datetime import datetime, timezone

    job_id = replay_job_id(event_id, datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))

    assert JOB_ID_SAFE.fullmatch(job_id)
    assert job_id == "replay-" + evaluation_job_id(event_id).removeprefix("evaluate-") + "-20260102T030405000000"


def test_chargebee_settings_keep_a_configured_site(tmp_path: Path):
    settings = Settings(chargebee_site="acme-test", chargebee_api_key="k", var_dir=tmp_path)

    assert chargebee_settings(settings) is settings


def test_chargebee_settings_without_site_or_sandbox_say_what_to_set(tmp_path: Path):
    with pytest.raises(click.ClickException) as raised:
        chargebee_settings(Settings(var_dir=tmp_path))

    assert raised.value.message == NO_CHARGEBEE
    assert "\n" not in NO_CHARGEBEE and "CHARGEBEE_SITE" in NO_CHARGEBEE


def test_chargebee_settings_use_the_sandbox_reactor_run_recorded(tmp_path: Path):
    import socket

    from reactor.sandbox import DEMO_API_KEY

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/api/v2"
        settings = Settings(var_dir=tmp_path)
        sandbox_url_file(settings).write_text(url + "\n")

        found = chargebee_settings(settings)

    assert (found.api_base, found.chargebee_api_key) == (url, DEMO_API_KEY)
