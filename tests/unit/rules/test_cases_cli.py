"""`reactor rules test` and `reactor rules explain --event`, as ops run them: output content and exit codes."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from click.testing import CliRunner, Result

from reactor.cli import main

REPO = Path(__file__).resolve().parents[3]


def reactor(*args: str, rules: Path = REPO / "rules.yaml") -> Result:
    env = {"REACTOR_RULES": str(rules), "REDIS_URL": None, "CHARGEBEE_SITE": None, "CHARGEBEE_API_BASE": None}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_rules_test_passes_the_shipped_cases_with_a_table_and_a_summary() -> None:
    result = reactor("rules", "test", str(REPO / "rules.cases.yaml"))
    assert result.exit_code == 0, result.output
    assert re.search(r"PASS\s+│ an enterprise customer id is", result.output)
    assert "FAIL" not in result.output
    assert re.search(r"(\d+) cases, \1 passed, 0 failed", result.output)


def test_rules_test_finds_the_cases_next_to_the_rules_by_default() -> None:
    result = reactor("rules", "test")
    assert result.exit_code == 0, result.output
    assert "rules.cases.yaml against" in result.output


def test_rules_test_exits_1_and_shows_expected_and_actual_for_a_failing_case(tmp_path: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        f"rules: {REPO / 'rules.yaml'}\n"
        "cases:\n"
        "  - name: wrongly-expected\n"
        "    invoice: {id: inv_1, customer_id: ent_acme, status: not_paid, amount_due: 100, currency_code: USD}\n"
        "    expect: {rule: dunning-exhausted-small-balance, action: write_off}\n"
    )
    result = reactor("rules", "test", str(cases), "--explain-failures")
    assert result.exit_code == 1
    row = next(line for line in result.output.splitlines() if "wrongly-expected" in line and "│" in line)
    assert "FAIL" in row and "protect-enterprise → skip" in row
    assert "1 cases, 0 passed, 1 failed" in result.output
    assert "← decided" in result.output  # the explanation of the failing case follows


def test_a_broken_cases_file_is_refused_with_file_line_col(tmp_path: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text("cases:\n  - name: a\n    invoice: {id: i}\n    expect: {rule: nope, action: skip}\n")
    result = reactor("rules", "test", str(cases))
    assert result.exit_code == 1
    assert f"{cases}:4:20: there is no rule 'nope'" in result.output


def test_explain_shows_each_condition_with_its_actual_value_and_the_deciding_rule(tmp_path: Path) -> None:
    result = reactor("rules", "explain", "--event", str(REPO / "examples" / "payment_failed_exhausted.json"))
    assert result.exit_code == 0, result.output
    out = result.output
    assert re.search(r"✘ rule protect-enterprise → skip", out)
    assert re.search(r"✘ invoice\.customer_id starts_with ent_\s+actual: 'cus_demo_ada'", out)
    assert re.search(r"✔ invoice\.dunning_status eq exhausted\s+actual: 'exhausted'", out)
    assert re.search(r"✔ invoice\.amount_due lte \{.*USD: 25.*\}\s+actual: 12\.50 USD", out)
    assert re.search(r"✔ rule dunning-exhausted-small-balance → write_off .*← decided", out)
    assert "decision: WRITE_OFF" in out


def test_explain_at_a_time_changes_days_overdue(tmp_path: Path) -> None:
    event = json.loads((REPO / "examples" / "payment_failed_exhausted.json").read_text())
    event["content"]["invoice"].update(amount_due=400, dunning_status="in_progress")
    path = tmp_path / "e.json"
    path.write_text(json.dumps(event))
    due = event["content"]["invoice"]["due_date"]
    later = (datetime.fromtimestamp(due, timezone.utc) + timedelta(days=95)).isoformat()
    result = reactor("rules", "explain", "--event", str(path), "--at", later)
    assert re.search(r"✔ days_overdue gte 90\s+actual: 95", result.output)
    assert re.search(r"rule long-overdue-tiny → write_off .*← decided", result.output)


def test_explain_needs_exactly_one_source() -> None:
    result = reactor("rules", "explain")
    assert result.exit_code == 2
    assert "exactly one of --event FILE.json or --invoice-id ID" in result.output
