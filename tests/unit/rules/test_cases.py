"""Rule test cases: the file format, its errors at file:line:col, and running cases on the engine."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from reactor.rules import load_rules, parse_rules
from reactor.rules.cases import CasesError, default_cases_path, load_cases, run_cases

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 3, 1, tzinfo=timezone.utc)

RULES = """\
version: 1
mode: live
limits: {max_write_off: {USD: 500}}
rules:
  - name: protect
    when: [{invoice.customer_id: {starts_with: ent_}}]
    action: skip
  - name: small
    on: [payment_failed]
    when: [{invoice.amount_due: {lte: {USD: 25}}}]
    action: write_off
  - name: overdue
    when: [{days_overdue: {gte: 90}}]
    action: write_off
"""


def write(tmp_path: Path, text: str, name: str = "rules.cases.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def messages(exc: pytest.ExceptionInfo[CasesError]) -> list[str]:
    return [str(p) for p in exc.value.problems]


def test_the_default_cases_file_sits_next_to_the_rules() -> None:
    assert default_cases_path(Path("/etc/reactor/rules.yaml")) == Path("/etc/reactor/rules.cases.yaml")


def test_an_invoice_shorthand_becomes_a_payment_failed_event_with_its_other_resources(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cases:\n"
        "  - name: c\n"
        "    invoice: {id: inv_1, amount_due: 100, currency_code: USD}\n"
        "    customer: {cf_segment: smb}\n"
        "    expect: {rule: small, action: write_off}\n",
    )
    (case,) = load_cases(path).cases
    assert case.event["event_type"] == "payment_failed"
    assert case.event["content"] == {
        "invoice": {"id": "inv_1", "amount_due": 100, "currency_code": "USD"},
        "customer": {"cf_segment": "smb"},
    }
    assert (case.expect_rule, case.expect_action, case.line) == ("small", "write_off", 2)


def test_yaml_dates_in_event_data_become_unix_seconds_and_at_is_a_utc_time(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cases:\n  - name: c\n    invoice: {id: i, due_date: 2025-12-01}\n    at: 2026-03-03T00:00:00Z\n"
        "    expect: {rule: overdue, action: write_off}\n",
    )
    (case,) = load_cases(path).cases
    assert case.event["content"]["invoice"]["due_date"] == int(datetime(2025, 12, 1, tzinfo=timezone.utc).timestamp())
    assert case.at == datetime(2026, 3, 3, tzinfo=timezone.utc)


def test_an_event_file_is_read_relative_to_the_cases_file(tmp_path: Path) -> None:
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "e.json").write_text(json.dumps({"id": "ev_1", "event_type": "invoice_updated"}))
    path = write(tmp_path, "cases:\n  - name: c\n    event: events/e.json\n    expect: {action: none}\n")
    assert load_cases(path).cases[0].event == {"id": "ev_1", "event_type": "invoice_updated"}


def test_every_problem_is_reported_at_file_line_col(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cases:\n"
        "  - name: a\n"
        "    invoice: {id: i}\n"
        "    expect: {rule: small, action: write_of}\n"
        "  - name: b\n"
        "    invoce: {id: i}\n"
        "    expect: {action: none}\n"
        "  - name: c\n"
        "    event: missing.json\n"
        "    expect: {action: none}\n",
    )
    with pytest.raises(CasesError) as exc:
        load_cases(path)
    found = messages(exc)
    wanted = f"{path}:4:35: expected action must be write_off, skip, none or awaits_approval"
    assert any(m.startswith(wanted) for m in found)
    assert any(m.startswith(f"{path}:6:5: unknown key 'invoce'") and "did you mean 'invoice'" in m for m in found)
    assert any(m.startswith(f"{path}:9:12: cannot read the event file") for m in found)


def test_an_expected_rule_that_is_not_in_the_rules_file_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "cases:\n  - name: a\n    invoice: {id: i}\n    expect: {rule: smal, action: write_off}\n")
    with pytest.raises(CasesError) as exc:
        load_cases(path, parse_rules(RULES))
    (message,) = messages(exc)
    assert message.startswith(f"{path}:4:20: there is no rule 'smal'") and "did you mean 'small'" in message


def test_action_none_with_a_rule_name_is_a_contradiction(tmp_path: Path) -> None:
    path = write(tmp_path, "cases:\n  - name: a\n    invoice: {id: i}\n    expect: {rule: small, action: none}\n")
    with pytest.raises(CasesError) as exc:
        load_cases(path)
    assert "with `action: none` no rule decides" in messages(exc)[0]


def test_running_cases_compares_the_deciding_rule_and_action(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cases:\n"
        "  - name: pass\n"
        "    invoice: {id: i1, customer_id: ent_x, amount_due: 100, currency_code: USD, status: not_paid}\n"
        "    expect: {rule: protect, action: skip}\n"
        "  - name: fail\n"
        "    invoice: {id: i2, customer_id: cus_x, amount_due: 100, currency_code: USD, status: not_paid}\n"
        "    expect: {rule: protect, action: skip}\n",
    )
    results = run_cases(parse_rules(RULES), load_cases(path).cases, NOW)
    assert [(r.case.name, r.passed) for r in results] == [("pass", True), ("fail", False)]
    assert (results[1].decision.rule, results[1].decision.action) == ("small", "write_off")


def test_a_write_off_stopped_by_a_guardrail_decides_skip_under_its_rule(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cases:\n  - name: over the limit\n"
        "    invoice: {id: i, customer_id: c, amount_due: 60000, currency_code: USD, status: not_paid,"
        " due_date: 2025-01-01}\n"
        "    event_type: invoice_updated\n"
        "    expect: {rule: overdue, action: skip}\n",
    )
    (result,) = run_cases(parse_rules(RULES), load_cases(path).cases, NOW)
    assert result.passed
    assert "over limits.max_write_off" in result.decision.reason


def test_the_shipped_cases_cover_every_shipped_rule_and_all_pass() -> None:
    ruleset = load_rules(REPO / "rules.yaml")
    cases = load_cases(REPO / "rules.cases.yaml", ruleset).cases
    results = run_cases(ruleset, cases, NOW)
    assert [r.case.name for r in results if not r.passed] == []
    decided = {r.case.expect_rule for r in results}
    assert decided >= {rule.name for rule in ruleset.rules}
    assert any(r.case.expect_action == "none" for r in results)  # near misses too
