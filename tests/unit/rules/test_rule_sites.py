"""`sites:` on a rule: parsed and checked at file:line:col, decided with the event's site, and the
`site:` of a rule test case; `rules check` and `rules test` read the deployment's site names."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from reactor.cli import main
from reactor.rules import RulesError, decide, parse_rules
from reactor.rules.cases import CasesError, load_cases, run_cases

NOW = datetime(2026, 3, 1, tzinfo=timezone.utc)

RULES = """\
version: 1
mode: live
limits: {max_write_off: {USD: 500, EUR: 500}}
rules:
  - name: protect-eu-enterprise
    sites: [acme-eu]
    when: [{invoice.customer_id: {starts_with: ent_}}]
    action: skip
  - name: eu-small
    sites: [acme-eu]
    when: [{invoice.amount_due: {lte: {EUR: 25}}}]
    action: write_off
  - name: everywhere-tiny
    when: [{invoice.amount_due: {lte: {USD: 1, EUR: 1}}}]
    action: write_off
"""


def event(customer_id: str = "cus_1", amount: int = 500, currency: str = "EUR") -> dict:
    invoice = {
        "id": "inv_1",
        "customer_id": customer_id,
        "status": "not_paid",
        "dunning_status": "exhausted",
        "amount_due": amount,
        "currency_code": currency,
    }
    return {"id": "ev_1", "event_type": "payment_failed", "api_version": "v2", "content": {"invoice": invoice}}


def test_a_rule_limited_to_a_site_decides_only_that_sites_events():
    rules = parse_rules(RULES)
    assert decide(rules.for_site("acme-eu"), event(), NOW).rule == "eu-small"
    assert decide(rules.for_site("acme-eu"), event(), NOW).action == "write_off"
    assert decide(rules.for_site("acme-us"), event(), NOW).action == "none"
    # a rule without `sites` applies to every site
    assert decide(rules.for_site("acme-us"), event(amount=100), NOW).rule == "everywhere-tiny"


def test_a_protective_rule_limited_to_a_site_protects_only_there():
    rules = parse_rules(RULES)
    assert decide(rules.for_site("acme-eu"), event("ent_big", amount=100), NOW).action == "skip"
    assert decide(rules.for_site("acme-us"), event("ent_big", amount=100), NOW).rule == "everywhere-tiny"


def test_without_a_site_a_limited_skip_protects_and_a_limited_write_off_does_not_act():
    rules = parse_rules(RULES)  # as loaded: no site named
    assert decide(rules, event(), NOW).action == "none"
    assert decide(rules, event("ent_big", amount=100), NOW).rule == "protect-eu-enterprise"
    assert [r.name for r in rules.every_rule] == ["protect-eu-enterprise", "eu-small", "everywhere-tiny"]


def test_a_file_without_sites_is_its_own_view_for_every_site():
    rules = parse_rules(RULES.replace("    sites: [acme-eu]\n", ""))
    assert rules.for_site("acme-eu") is rules and rules.for_site(None) is rules


def test_the_views_keep_version_mode_and_limits():
    rules = parse_rules(RULES)
    eu = rules.for_site("acme-eu")
    assert (eu.version, eu.mode, eu.limits) == (rules.version, rules.mode, rules.limits)
    assert eu.for_site("acme-eu") is eu and rules.for_site("acme-eu") is eu


@pytest.mark.parametrize(
    ("sites", "col", "words"),
    [
        ("[]", 12, "empty list"),
        ("[Acme_EU]", 13, "Chargebee site names"),
        ("[acme-eu, {a: 1}]", 22, "Chargebee site names"),
    ],
)
def test_a_malformed_sites_is_refused_at_its_position(sites, col, words):
    text = RULES.replace(
        "    sites: [acme-eu]\n    when: [{invoice.amount_due", f"    sites: {sites}\n    when: [{{invoice.amount_due"
    )
    with pytest.raises(RulesError) as refused:
        parse_rules(text)
    [problem] = refused.value.problems
    assert (problem.line, problem.col) == (10, col) and words in problem.message


def test_an_unknown_site_is_refused_at_its_position_when_the_sites_are_known():
    text = RULES.replace(
        "sites: [acme-eu]\n    when: [{invoice.amount_due", "sites: [acme-ue]\n    when: [{invoice.amount_due"
    )
    with pytest.raises(RulesError) as refused:
        parse_rules(text, sites=("acme-us", "acme-eu"))
    [problem] = refused.value.problems
    assert (problem.line, problem.col) == (10, 13)
    assert "acme-ue" in problem.message and "acme-eu" in problem.message
    assert parse_rules(text).every_rule[1].sites == frozenset({"acme-ue"})  # unchecked without the names


def test_rules_check_refuses_a_site_the_deployment_does_not_serve(tmp_path: Path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    env = {"REACTOR_SITES": "", "CHARGEBEE_SITE": "acme-us", "CHARGEBEE_API_KEY": "k", "REACTOR_RULES": str(path)}
    refused = CliRunner().invoke(main, ["rules", "check", str(path)], env=env)
    assert refused.exit_code == 1
    assert f"{path}:6:13:" in refused.output and "acme-eu" in refused.output

    env.update(
        REACTOR_SITES="acme-eu",
        REACTOR_SITE_ACME_EU_API_KEY="k2",
        REACTOR_SITE_ACME_EU_WEBHOOK_USER="u",
        REACTOR_SITE_ACME_EU_WEBHOOK_PASSWORD="p",
    )
    accepted = CliRunner().invoke(main, ["rules", "check", str(path)], env=env)
    assert accepted.exit_code == 0, accepted.output
    assert "rule eu-small applies to sites acme-eu only" in accepted.output


CASES = """\
cases:
  - name: eu small balance
    site: acme-eu
    invoice: {id: inv_1, customer_id: cus_1, status: not_paid, amount_due: 500, currency_code: EUR}
    expect: {rule: eu-small, action: write_off}
  - name: the same invoice on acme-us
    site: acme-us
    invoice: {id: inv_1, customer_id: cus_1, status: not_paid, amount_due: 500, currency_code: EUR}
    expect: {rule: null, action: none}
"""


def test_rule_test_cases_name_their_site(tmp_path: Path):
    path = tmp_path / "rules.cases.yaml"
    path.write_text(CASES)
    rules = parse_rules(RULES)
    cases = load_cases(path, rules, sites=("acme-us", "acme-eu")).cases
    assert [c.site for c in cases] == ["acme-eu", "acme-us"]
    assert [r.passed for r in run_cases(rules, cases, NOW)] == [True, True]


def test_a_case_naming_an_unknown_site_is_refused_at_its_position(tmp_path: Path):
    path = tmp_path / "rules.cases.yaml"
    path.write_text(CASES.replace("site: acme-us", "site: acme-usa"))
    with pytest.raises(CasesError) as refused:
        load_cases(path, parse_rules(RULES), sites=("acme-us", "acme-eu"))
    [problem] = refused.value.problems
    assert (problem.line, problem.col) == (7, 11) and "acme-usa" in problem.message


def test_rules_test_runs_cases_that_name_their_site(tmp_path: Path):
    rules, cases = tmp_path / "rules.yaml", tmp_path / "rules.cases.yaml"
    rules.write_text(RULES)
    cases.write_text(CASES)
    env = {
        "CHARGEBEE_SITE": "acme-us",
        "CHARGEBEE_API_KEY": "k",
        "REACTOR_RULES": str(rules),
        "REACTOR_SITES": "acme-eu",
        "REACTOR_SITE_ACME_EU_API_KEY": "k2",
        "REACTOR_SITE_ACME_EU_WEBHOOK_USER": "u",
        "REACTOR_SITE_ACME_EU_WEBHOOK_PASSWORD": "p",
    }
    passed = CliRunner().invoke(main, ["rules", "test", str(cases)], env=env)
    assert passed.exit_code == 0, passed.output
    assert "2 cases, 2 passed, 0 failed" in passed.output

    plain = tmp_path / "plain.yaml"  # the same rules without `sites:`, on a deployment without acme-eu
    plain.write_text(RULES.replace("    sites: [acme-eu]\n", ""))
    env["REACTOR_SITES"] = ""
    refused = CliRunner().invoke(main, ["rules", "test", str(cases), "--rules", str(plain)], env=env)
    assert refused.exit_code != 0
    assert f"{cases}:3:11:" in refused.output and "acme-eu" in refused.output


def test_rules_check_of_a_file_without_sites_needs_no_settings(tmp_path: Path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.replace("    sites: [acme-eu]\n", ""))
    broken = {"CHARGEBEE_SITE": "acme-us", "CHARGEBEE_API_KEY": "", "REACTOR_SITES": ""}  # a key is required
    assert CliRunner().invoke(main, ["rules", "check", str(path)], env=broken).exit_code == 0
    path.write_text(RULES)
    refused = CliRunner().invoke(main, ["rules", "check", str(path)], env=broken)
    assert refused.exit_code == 1 and "cannot be checked" in refused.output
