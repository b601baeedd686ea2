"""`reactor rules check`: exit 0 with a summary, or exit 1 with file:line:col for every problem."""

from pathlib import Path

from click.testing import CliRunner, Result

from reactor.cli import main

REPO = Path(__file__).resolve().parents[3]


def check(tmp_path: Path, text: str, relief_delays: str = "") -> tuple[Path, Result]:
    """`reactor rules check` on `text`, written to rules.yaml in tmp_path; the file's path and the result.
    No country waits for VAT relief unless `relief_delays` (REACTOR_RELIEF_DELAYS) says so."""
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    env = {"REACTOR_RELIEF_DELAYS": relief_delays}
    return path, CliRunner().invoke(main, ["rules", "check", str(path)], env=env)


def test_the_shipped_rules_pass_the_check():
    result = CliRunner().invoke(main, ["rules", "check", str(REPO / "rules.yaml")])
    assert result.exit_code == 0, result.output
    assert "OK, version" in result.output and "dunning-exhausted-small-balance" in result.output


def test_every_problem_is_reported_with_its_position_and_the_file_is_refused(tmp_path):
    path, result = check(
        tmp_path,
        "version: 1\n"
        "mode: live\n"
        "rules:\n"
        "  - name: a\n"
        "    when:\n"
        "      - invoice.amount_due: {lte_: 5}\n"
        "    action: write_of\n"
        "  - name: a\n"
        "    when: [{invoice.status: paid}]\n"
        "    action: skip\n",
    )
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith(str(path))]
    assert any(f"{path}:6:" in line and "lte_" in line for line in lines), result.output
    assert any(f"{path}:7:" in line and "write_of" in line for line in lines), result.output
    assert any(f"{path}:8:" in line and "duplicate" in line.lower() for line in lines), result.output
    assert "3 problems; rules refused" in result.output


def test_a_yaml_syntax_error_names_line_and_column(tmp_path):
    path, result = check(tmp_path, "version: 1\nrules:\n  - name: [unclosed\n")
    assert result.exit_code == 1
    assert f"{path}:4:1" in result.output or f"{path}:3:" in result.output, result.output


def test_a_missing_file_is_reported_not_a_traceback(tmp_path):
    result = CliRunner().invoke(main, ["rules", "check", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert "nope.yaml:1:1" in result.output and "Traceback" not in result.output


def test_warnings_are_printed_with_their_position_and_the_check_passes(tmp_path):
    path, result = check(
        tmp_path,
        "version: 1\n"
        "rules:\n"
        "  - name: a\n"
        "    on: [payment_failed]\n"
        "    when:\n"
        "      - days_overdue: {gte: 0}\n"
        "    action: write_off\n",
    )
    assert result.exit_code == 0, result.output
    assert (
        f"{path}:6:24: warning: in rule 'a', `days_overdue: {{gte: 0}}` is always true for every invoice with a "
        "due date: days_overdue is never negative (it is 0 until the due date); the condition does nothing"
    ) in result.output.splitlines()
    assert f"{path}: 1 warning; the rules load, but check them" in result.output
    assert "OK, version" in result.output


def test_rules_that_write_off_while_chargebee_collects_are_named(tmp_path):
    _, result = check(
        tmp_path,
        "version: 1\n"
        "rules:\n"
        "  - name: eager\n"
        "    when: {invoice.amount_due: {lte: 1}}\n"
        "    action: write_off\n"
        "    while_collecting: write_off\n"
        "  - name: patient\n"
        "    when: {invoice.amount_due: {lte: 2}}\n"
        "    action: write_off\n",
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "rule eager writes off even while Chargebee is still collecting (while_collecting: write_off)" in lines
    assert not any("patient writes off" in line for line in lines)
    assert "warning" not in result.output


def test_a_write_off_rule_on_an_invoiceless_event_fails_the_check(tmp_path):
    path, result = check(
        tmp_path,
        "version: 1\n"
        "rules:\n"
        "  - name: a\n"
        "    on: [credit_note_created]\n"
        "    when: {invoice.amount_dew: {lte: 1}}\n"
        "    action: write_off\n",
    )
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(line.startswith(f"{path}:4:9: rule 'a' writes off on credit_note_created only") for line in lines)
    assert (
        f"{path}:5:12: unknown field 'invoice.amount_dew': invoices have no attribute 'amount_dew'; "
        "did you mean 'amount_due'?"
    ) in lines
    assert "2 problems; rules refused" in result.output


def test_rules_that_match_a_text_are_named_with_the_length_matches_reads(tmp_path):
    _, result = check(
        tmp_path,
        "version: 1\n"
        "rules:\n"
        "  - name: protect-disputes\n"
        "    when:\n"
        "      any:\n"
        "        - customer.cf_note: {matches: dispute}\n"
        "        - not: {invoice.customer_id: {matches: '^cus_'}}\n"
        "    action: skip\n"
        "  - name: plain\n"
        "    when: {invoice.amount_due: {lte: 2}}\n"
        "    action: write_off\n",
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert (
        "rule protect-disputes: `matches` reads texts up to 1,048,576 characters (customer.cf_note,"
        " invoice.customer_id); a longer text cannot be evaluated, and no write-off rests on it (facts_missing)"
    ) in lines
    assert not any(line.startswith("rule plain") for line in lines)


RELIEF_RULES = (
    "version: 1\n"
    "rules:\n"
    "  - name: early\n"
    "    when:\n"
    "      - days_overdue: {gte: 90}\n"
    "    action: write_off\n"
    "  - name: late\n"
    "    when:\n"
    "      - days_overdue: {gte: 184}\n"
    "    action: write_off\n"
    "  - name: abroad\n"
    "    when:\n"
    "      - invoice.billing_address.country: {not_in: [GB, FR]}\n"
    "    action: write_off\n"
    "  - name: untaxed\n"
    "    when:\n"
    "      - invoice.tax: 0\n"
    "    action: write_off\n"
    "  - name: either\n"
    "    when:\n"
    "      any:\n"
    "        - days_overdue: {gte: 400}\n"
    "        - days_overdue: {between: [30, 60]}\n"
    "    action: write_off\n"
    "  - name: spare\n"
    "    when:\n"
    "      - days_overdue: {lt: 10}\n"
    "    action: skip\n"
)


def test_write_offs_before_a_countrys_relief_delay_are_warned_naming_rule_and_country(tmp_path):
    path, result = check(tmp_path, RELIEF_RULES, relief_delays="GB=6,DE=0,FR=3")

    assert result.exit_code == 0, result.output
    warned = sorted(
        line.split(": warning: rule ")[1].split(" ")[0:6]
        for line in result.output.splitlines()
        if ": warning: rule " in line
    )
    assert warned == [
        ["early", "can", "write", "off", "taxed", "FR"],
        ["early", "can", "write", "off", "taxed", "GB"],
        ["either", "can", "write", "off", "taxed", "FR"],
        ["either", "can", "write", "off", "taxed", "GB"],
    ]
    assert (
        f"{path}:3:5: warning: rule early can write off taxed GB invoices 90 days overdue, before GB's 6-month "
        "wait for VAT bad-debt relief (REACTOR_RELIEF_DELAYS): relief on them is claimable only later "
        "(reactor report bad-debt)"
    ) in result.output.splitlines()
    assert f"{path}: 4 warnings; the rules load, but check them" in result.output


def test_no_relief_warning_without_a_country_that_waits(tmp_path):
    _, result = check(tmp_path, RELIEF_RULES, relief_delays="DE=0")

    assert result.exit_code == 0 and ": warning:" not in result.output, result.output


def test_the_default_delays_warn_of_the_shipped_rules_for_gb(tmp_path):
    result = CliRunner().invoke(main, ["rules", "check", str(REPO / "rules.yaml")], env={"REACTOR_RELIEF_DELAYS": None})

    assert result.exit_code == 0, result.output
    assert "warning: rule long-overdue-tiny can write off taxed GB invoices 90 days overdue" in result.output
