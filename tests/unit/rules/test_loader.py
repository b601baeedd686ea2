"""Loading rules.yaml: a valid file compiles; every kind of mistake is reported at its exact spot."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from reactor.rules import KNOWN_EVENT_TYPES, Rule, RuleProblem, RulesError, RuleSet, load_rules, parse_rules

from .helpers import problem_at, problems

HEAD = "version: 1\nmode: live\nrules:\n"


def rule_file(*lines: str) -> str:
    """HEAD plus a rule `r` (line 4) whose `when` list starts on line 6 with `lines`."""
    return HEAD + "  - name: r\n    when:\n" + "".join(f"      - {line}\n" for line in lines) + "    action: skip\n"


# --- accepted files ------------------------------------------------------------------------------


def test_a_valid_file_compiles_every_rule_in_order() -> None:
    ruleset = parse_rules(
        rule_file("invoice.status: paid") + "  - name: s\n    when: {invoice.status: x}\n    action: skip\n"
    )
    assert [rule.name for rule in ruleset.rules] == ["r", "s"]
    assert ruleset.mode == "live" and ruleset.filename == "rules.yaml"


def test_rule_keeps_its_position() -> None:
    rule = parse_rules(rule_file("invoice.status: paid")).rules[0]
    assert (rule.line, rule.col) == (4, 5)


def test_version_is_the_start_of_the_sha256_of_the_text() -> None:
    text = rule_file("invoice.status: paid")
    assert parse_rules(text).version == hashlib.sha256(text.encode()).hexdigest()[:12]


def test_load_rules_hashes_the_file_bytes_and_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_bytes(rule_file("invoice.status: paid").encode())
    ruleset = load_rules(path)
    assert ruleset.version == hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    assert ruleset.filename == str(path)


def test_missing_mode_means_dry_run() -> None:
    assert parse_rules("version: 1\nrules: []\n").mode == "dry_run"


def test_dry_run_mode_is_accepted() -> None:
    assert parse_rules("version: 1\nmode: dry_run\nrules: []\n").mode == "dry_run"


def test_limits_accept_a_plain_number_and_a_currency_map() -> None:
    plain = parse_rules("version: 1\nlimits: {max_write_off: 100}\nrules: []\n").limits.max_write_off
    per_currency = parse_rules("version: 1\nlimits: {max_write_off: {USD: 500}}\nrules: []\n").limits
    assert plain is not None and str(plain.major_for("CHF")) == "100"
    assert per_currency.max_write_off is not None and per_currency.max_write_off.major_for("CHF") is None


def test_on_accepts_a_single_event_type() -> None:
    text = HEAD + "  - name: r\n    on: payment_failed\n    when: {invoice.status: x}\n    action: skip\n"
    assert parse_rules(text).rules[0].on == frozenset({"payment_failed"})


def test_known_event_types_cover_the_invoice_and_dunning_events() -> None:
    assert {
        "payment_failed",
        "invoice_updated",
        "dunning_updated",
        "payment_due_reminder",
    } <= KNOWN_EVENT_TYPES


def test_the_shipped_rules_file_loads() -> None:
    ruleset = load_rules(Path(__file__).resolve().parents[3] / "rules.yaml")
    names = [rule.name for rule in ruleset.rules]
    assert names == ["protect-enterprise", "dunning-exhausted-small-balance", "long-overdue-tiny"]
    assert ruleset.mode == "live" and ruleset.warnings == ()


# --- how problems are reported -------------------------------------------------------------------


def test_problem_reads_file_line_col_message() -> None:
    assert str(RuleProblem("rules.yaml", 12, 7, "bad")) == "rules.yaml:12:7: bad"


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    text = (
        rule_file("invoce.status: paid", "invoice.status: {gtee: 1}")
        + "  - name: r\n    when: {a.b: 1}\n    action: nope\n"
    )
    positions = [(line, col) for line, col, _ in problems(text)]
    assert positions == [(6, 9), (7, 26), (9, 11), (10, 12), (11, 13)]


def test_rules_error_prints_one_problem_per_line() -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules("version: 3\nmode: x\nrules: []\n", filename="ops.yaml")
    assert str(caught.value).splitlines() == [
        "ops.yaml:1:10: unsupported version 3; this reactor understands `version: 1`",
        "ops.yaml:2:7: mode must be live or dry_run, not 'x'",
    ]


def test_unreadable_file_is_a_problem_at_line_1_col_1(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as caught:
        load_rules(tmp_path / "missing.yaml")
    (problem,) = caught.value.problems
    assert (problem.line, problem.col) == (1, 1) and "cannot read the rule file" in problem.message


def test_file_that_is_not_utf8_is_refused_at_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_bytes(b"version: 1\nmode: \xff\n")
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    assert [(p.line, p.col) for p in caught.value.problems] == [(2, 7)]


# --- YAML-level mistakes -------------------------------------------------------------------------


def test_yaml_syntax_error_is_reported_where_pyyaml_finds_it() -> None:
    assert "mapping values are not allowed" in problem_at("version: 1\nmode: live: x\n", 2, 11)


def test_unclosed_flow_list_is_a_syntax_error() -> None:
    ((line, col, message),) = problems("version: 1\nrules: [\n")
    assert (line, col) == (3, 1) and message.startswith("YAML syntax error")


def test_tab_indentation_is_reported_on_its_line() -> None:
    message = problem_at("version: 1\nrules:\n\t- name: r\n", 3, 1)
    assert "tab" in message and "spaces" in message


def test_duplicate_key_points_at_the_repeat_and_names_the_first_line() -> None:
    text = rule_file("invoice.status: paid") + "    action: write_off\n"
    message = problem_at(text, 8, 5)
    assert message.startswith("duplicate key 'action' (first at line 7)")


def test_duplicate_key_inside_a_condition_is_reported() -> None:
    message = problem_at(rule_file("{invoice.status: paid, invoice.status: unpaid}"), 6, 32)
    assert "duplicate key 'invoice.status'" in message


def test_empty_file_is_refused() -> None:
    assert "empty" in problem_at("", 1, 1)


def test_top_level_must_be_a_mapping() -> None:
    assert "must be a mapping" in problem_at("- a\n- b\n", 1, 1)


def test_unknown_top_level_key_suggests_the_right_one() -> None:
    message = problem_at("version: 1\nrules: []\nlimts: {}\n", 3, 1)
    assert "unknown key 'limts'" in message and "did you mean 'limits'?" in message


def test_missing_version_is_reported() -> None:
    assert "missing `version`" in problem_at("mode: live\nrules: []\n", 1, 1)


def test_unsupported_version_is_reported_at_its_value() -> None:
    assert "unsupported version 2" in problem_at("version: 2\nrules: []\n", 1, 10)


def test_bad_mode_suggests_the_right_one() -> None:
    assert "did you mean 'live'?" in problem_at("version: 1\nmode: liv\nrules: []\n", 2, 7)


def test_missing_rules_is_reported() -> None:
    assert "missing `rules`" in problem_at("version: 1\n", 1, 1)


def test_rules_must_be_a_list() -> None:
    assert "must be a list of rules" in problem_at("version: 1\nrules: {name: r}\n", 2, 8)


# --- limits --------------------------------------------------------------------------------------


def test_unknown_limit_is_reported() -> None:
    message = problem_at("version: 1\nlimits:\n  max_writeoff: 5\nrules: []\n", 3, 3)
    assert "did you mean 'max_write_off'?" in message


def test_limit_must_be_positive() -> None:
    assert "positive" in problem_at("version: 1\nlimits:\n  max_write_off: {USD: 0}\nrules: []\n", 3, 24)


def test_limit_must_be_a_number() -> None:
    assert "needs a number" in problem_at("version: 1\nlimits:\n  max_write_off: lots\nrules: []\n", 3, 18)


def test_limit_currency_must_be_an_iso_code() -> None:
    assert "three capital letters" in problem_at("version: 1\nlimits:\n  max_write_off: {usd: 5}\nrules: []\n", 3, 19)


def test_limits_must_be_a_mapping() -> None:
    assert "`limits` must be a mapping" in problem_at("version: 1\nlimits: 500\nrules: []\n", 2, 9)


# --- rule structure ------------------------------------------------------------------------------


def test_rule_without_name_when_and_action_gets_three_problems() -> None:
    found = problems(HEAD + "  - description: nothing else\n")
    assert [(line, col) for line, col, _ in found] == [(4, 5)] * 3
    assert {"has no `name`", "has no `when`", "has no `action`"} == {
        next(part for part in ("has no `name`", "has no `when`", "has no `action`") if part in msg)
        for _, _, msg in found
    }


def test_unknown_action_suggests_the_right_one() -> None:
    text = HEAD + "  - name: r\n    when: {invoice.status: x}\n    action: writeoff\n"
    assert "did you mean 'write_off'?" in problem_at(text, 6, 13)


def test_duplicate_rule_name_points_at_the_second_and_names_the_first() -> None:
    text = rule_file("invoice.status: paid") + "  - name: r\n    when: {invoice.status: x}\n    action: skip\n"
    assert "duplicate rule name 'r' (first used at line 4)" in problem_at(text, 8, 11)


def test_rule_name_must_be_a_simple_identifier() -> None:
    text = HEAD + "  - name: my rule!\n    when: {invoice.status: x}\n    action: skip\n"
    assert "letters, digits" in problem_at(text, 4, 11)


def test_unknown_key_in_a_rule_is_reported() -> None:
    text = rule_file("invoice.status: paid") + "    comentt: hi\n"
    assert "did you mean 'comment'?" in problem_at(text, 8, 5)


def test_rule_must_be_a_mapping() -> None:
    assert "rule #1 must be a mapping" in problem_at(HEAD + "  - just text\n", 4, 5)


def test_unknown_event_type_in_on_suggests_the_right_one() -> None:
    text = (
        HEAD
        + "  - name: r\n    on: [payment_failed, paymnt_faild]\n"
        + "    when: {invoice.status: x}\n    action: skip\n"
    )
    message = problem_at(text, 5, 26)
    assert "unknown event type 'paymnt_faild'" in message and "did you mean 'payment_failed'?" in message


def test_empty_on_list_is_refused() -> None:
    text = HEAD + "  - name: r\n    on: []\n    when: {invoice.status: x}\n    action: skip\n"
    assert "empty list" in problem_at(text, 5, 9)


# --- comments ------------------------------------------------------------------------------------


def write_off_with_comment(comment: str) -> str:
    return HEAD + f"  - name: r\n    when: {{invoice.status: x}}\n    action: write_off\n    comment: {comment}\n"


def test_unknown_placeholder_suggests_the_right_one() -> None:
    message = problem_at(write_off_with_comment('"due {amount_dew}"'), 7, 14)
    assert "unknown placeholder {amount_dew}" in message and "did you mean 'amount_due'?" in message


def test_broken_braces_in_a_comment_are_reported() -> None:
    assert "broken braces" in problem_at(write_off_with_comment('"due {amount_due"'), 7, 14)


def test_placeholder_with_a_format_spec_is_refused() -> None:
    assert "takes no format" in problem_at(write_off_with_comment('"{amount_due:>10}"'), 7, 14)


def test_comment_over_300_characters_is_refused() -> None:
    assert "301 characters" in problem_at(write_off_with_comment("x" * 301), 7, 14)


def test_comment_on_a_skip_rule_is_refused() -> None:
    text = HEAD + "  - name: r\n    when: {invoice.status: x}\n    action: skip\n    comment: hi\n"
    assert "only write_off rules use a comment" in problem_at(text, 7, 14)


# --- conditions ----------------------------------------------------------------------------------


def test_unknown_field_root_suggests_the_right_one() -> None:
    message = problem_at(rule_file("invoce.status: paid"), 6, 9)
    assert "unknown field 'invoce.status'" in message and "did you mean 'invoice'?" in message


def test_a_whole_resource_is_not_a_field() -> None:
    assert "name one of its fields" in problem_at(rule_file("invoice: paid"), 6, 9)


def test_days_overdue_has_no_sub_fields() -> None:
    assert "no sub-fields" in problem_at(rule_file("days_overdue.x: 1"), 6, 9)


def test_empty_path_part_is_refused() -> None:
    assert "empty or space-padded part" in problem_at(rule_file("invoice..status: paid"), 6, 9)


def test_unknown_operator_suggests_the_right_one() -> None:
    message = problem_at(rule_file("invoice.amount_due: {lte: 5, gtee: 3}"), 6, 38)
    assert "unknown operator 'gtee'" in message and "did you mean 'gte'?" in message


def test_operator_used_as_a_field_is_explained() -> None:
    assert "'gte' is an operator; put it under a field" in problem_at(rule_file("gte: 5"), 6, 9)


def test_list_as_a_value_points_to_in() -> None:
    assert "use `{in: [...]}`" in problem_at(rule_file("invoice.status: [paid, voided]"), 6, 25)


def test_empty_operator_mapping_is_refused() -> None:
    assert "no operator given" in problem_at(rule_file("invoice.status: {}"), 6, 25)


@pytest.mark.parametrize(
    ("condition", "col", "words"),
    [
        ("invoice.total: {between: [1]}", 34, "list of two numbers"),
        ("invoice.total: {between: [5, 1]}", 34, "low <= high"),
        ("invoice.total: {between: [a, 5]}", 35, "needs a number"),
        ("invoice.status: {in: paid}", 30, "non-empty list"),
        ("invoice.status: {in: []}", 30, "list of 'in' is empty"),
        ("invoice.status: {not_in: [[a]]}", 35, "single value"),
        ("invoice.status: {exists: yes}", 34, "true or false"),
        ("invoice.total: {gte: abc}", 30, "needs a number"),
        ("invoice.date: {gte: abc}", 29, "needs a number"),
        ("invoice.total: {gte: .inf}", 30, "finite number"),
        ("invoice.date: {gte: {USD: 5}}", 29, "currency maps only apply to money fields"),
        ("invoice.status: {eq: {a: 1}}", 30, "needs a single value"),
        ("invoice.total: {lte: {usd: 5}}", 31, "three capital letters"),
        ("invoice.total: {lte: {}}", 30, "currency map is empty"),
        ("invoice.status: {matches: '(['}", 35, "invalid regular expression"),
        ("invoice.status: {starts_with: ''}", 39, "non-empty text"),
        ("invoice.total: {starts_with: a}", 38, "compares text"),
        ("invoice.status: {eq: null}", 30, "exists: false"),
        ("invoice.status: {eq: 2024-01-01}", 30, "quote it"),
        ("invoice.customer_id: 12345", 30, "quote the value"),
        ("days_overdue: {eq: ten}", 28, "number of days"),
    ],
)
def test_wrong_operand_is_reported_at_the_operand(condition: str, col: int, words: str) -> None:
    assert words in problem_at(rule_file(condition), 6, col)


def test_empty_any_list_is_refused() -> None:
    assert "'any' has an empty list" in problem_at(rule_file("any: []"), 6, 14)


def test_empty_all_list_is_refused() -> None:
    assert "'all' has an empty list" in problem_at(rule_file("all: []"), 6, 14)


def test_all_needs_a_list() -> None:
    assert "'all' needs a list" in problem_at(rule_file("all: {invoice.status: paid}"), 6, 14)


def test_not_needs_a_condition() -> None:
    assert "'not' needs a condition" in problem_at(rule_file("not: paid"), 6, 14)


def test_combinator_must_be_alone_in_its_mapping() -> None:
    assert "must be the only key" in problem_at(rule_file("{any: [{invoice.status: a}], invoice.total: 1}"), 6, 10)


def test_empty_when_list_is_refused() -> None:
    text = HEAD + "  - name: r\n    when: []\n    action: skip\n"
    assert "empty" in problem_at(text, 5, 11)


def test_condition_list_items_must_be_mappings() -> None:
    assert "must be a mapping" in problem_at(rule_file("invoice.status"), 6, 9)


def test_scalar_when_is_refused() -> None:
    text = HEAD + "  - name: r\n    when: always\n    action: skip\n"
    assert "a condition must be a mapping" in problem_at(text, 5, 11)


def test_deeply_nested_conditions_are_refused() -> None:
    nested = "{not: " * 40 + "{invoice.status: x}" + "}" * 40
    text = HEAD + f"  - name: r\n    when: {nested}\n    action: skip\n"
    assert any("nested more than" in message for _, _, message in problems(text))


def test_recursive_yaml_alias_is_refused_not_looped_forever() -> None:
    text = HEAD + "  - name: r\n    when: &loop {not: *loop}\n    action: skip\n"
    assert problems(text)


# --- events that carry no invoice ----------------------------------------------------------------

INVOICE_EVENTS = "invoice_updated, payment_failed, payment_succeeded, dunning_updated or sweep"


def rule_on(on: str, action: str = "write_off", extra: str = "") -> str:
    """One rule `r` (line 4) with `on:` on line 5."""
    return HEAD + f"  - name: r\n    on: {on}\n    when: {{invoice.status: x}}\n    action: {action}\n{extra}"


def test_write_off_on_events_without_an_invoice_is_refused_at_on() -> None:
    assert problem_at(rule_on("[credit_note_created, customer_changed]"), 5, 9) == (
        "rule 'r' writes off on credit_note_created and customer_changed only, which carry no invoice, "
        f"so the rule can never act; name events that carry one, such as {INVOICE_EVENTS}"
    )


def test_write_off_on_a_single_invoiceless_event_is_refused() -> None:
    assert problem_at(rule_on("credit_note_created"), 5, 9) == (
        "rule 'r' writes off on credit_note_created only, which carries no invoice, "
        f"so the rule can never act; name events that carry one, such as {INVOICE_EVENTS}"
    )


def test_each_invoiceless_event_in_a_mixed_write_off_on_is_refused() -> None:
    found = problems(rule_on("[payment_failed, transaction_updated, invoice_updated, card_expired]"))
    assert found == [
        (
            5,
            26,
            "rule 'r' writes off, but transaction_updated carries no invoice, so the rule can never act on it; "
            f"remove it from `on` (events that carry one: {INVOICE_EVENTS})",
        ),
        (
            5,
            64,
            "rule 'r' writes off, but card_expired carries no invoice, so the rule can never act on it; "
            f"remove it from `on` (events that carry one: {INVOICE_EVENTS})",
        ),
    ]


def test_write_off_on_subscription_cancelled_loads_with_a_warning() -> None:
    # Chargebee's event schema (chargebee-go, chargebee-node) gives subscription_cancelled an
    # optional invoice, so the rule is not refused; captured payloads have none, hence the warning.
    ruleset = parse_rules(rule_on("[subscription_cancelled]"))
    ((warning),) = ruleset.warnings
    assert (warning.line, warning.col) == (5, 10)
    assert warning.message.startswith(
        "rule 'r' writes off on subscription_cancelled: subscription_cancelled carries an invoice only when "
        "the cancellation itself bills something"
    )


def test_sweep_and_invoice_events_are_fine_for_write_off() -> None:
    ruleset = parse_rules(rule_on("[payment_failed, invoice_updated, sweep]"))
    assert ruleset.warnings == () and ruleset.rules[0].on == {"payment_failed", "invoice_updated", "sweep"}


# --- attribute names -----------------------------------------------------------------------------


def test_a_misspelt_invoice_attribute_is_refused_with_a_did_you_mean() -> None:
    assert problem_at(rule_file("invoice.amount_dew: {lte: 5}"), 6, 9) == (
        "unknown field 'invoice.amount_dew': invoices have no attribute 'amount_dew'; did you mean 'amount_due'?"
    )


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "customer.emial",
            "unknown field 'customer.emial': customers have no attribute 'emial'; did you mean 'email'?",
        ),
        (
            "subscription.cancel_reasn",
            "unknown field 'subscription.cancel_reasn': subscriptions have no attribute 'cancel_reasn'; "
            "did you mean 'cancel_reason'?",
        ),
        (
            "transaction.stauts",
            "unknown field 'transaction.stauts': transactions have no attribute 'stauts'; did you mean 'status'?",
        ),
        (
            "credit_note.totl",
            "unknown field 'credit_note.totl': credit notes have no attribute 'totl'; did you mean 'total'?",
        ),
        (
            "event.event_typ",
            "unknown field 'event.event_typ': events have no attribute 'event_typ'; did you mean 'event_type'?",
        ),
        ("invoice.zzz", "unknown field 'invoice.zzz': invoices have no attribute 'zzz'"),
    ],
)
def test_unknown_attributes_of_each_checked_resource_are_refused(path: str, message: str) -> None:
    assert problem_at(rule_file(f"{path}: x"), 6, 9) == message


@pytest.mark.parametrize(
    "path",
    [
        "customer.cf_segmnet",  # a custom field: any cf_ name is accepted (a typo cannot be caught)
        "invoice.cf_region",
        "subscription.plan_id",  # Product Catalog 1.0
        "subscription.addons.0.id",
        "invoice.billing_address.country",  # deeper keys: only billing_address is checked
        "invoice.line_items.0.entity_id",
        "invoice.linked_payments.0.txn_status",
        "invoice.expected_payment_date",
        "invoice.deleted",
        "event.source",
        "card.whatever_the_gateway_sends",  # resources without a table are not checked
    ],
)
def test_real_attributes_custom_fields_and_unchecked_resources_are_accepted(path: str) -> None:
    assert parse_rules(rule_file(f"{path}: x")).rules[0].condition.field.path == path


@pytest.mark.parametrize(
    ("path", "named"),
    [("event.content.customer.cf_segment", "customer.cf_segment"), ("event.content", "invoice.id")],
)
def test_resources_are_read_by_their_own_name_not_through_event_content(path: str, named: str) -> None:
    """customer.* is fetched when the event lacks it; event.content.customer.* would read as missing."""
    message = problem_at(rule_file(f"{path}: x"), 6, 9)
    assert message == f"field '{path}': read the event's resources by their own name, e.g. {named}"


# --- while_collecting ----------------------------------------------------------------------------


def test_while_collecting_defaults_to_wait() -> None:
    assert parse_rules(rule_on("payment_failed")).rules[0].while_collecting == "wait"


@pytest.mark.parametrize("value", ["wait", "write_off"])
def test_while_collecting_is_read_on_write_off_rules(value: str) -> None:
    text = rule_on("payment_failed", extra=f"    while_collecting: {value}\n")
    assert parse_rules(text).rules[0].while_collecting == value


def test_a_bad_while_collecting_value_suggests_the_right_one() -> None:
    text = rule_on("payment_failed", extra="    while_collecting: writeoff\n")
    assert problem_at(text, 8, 23) == (
        "while_collecting of rule 'r' must be wait or write_off, not 'writeoff'; did you mean 'write_off'?"
    )


def test_while_collecting_must_be_text() -> None:
    text = rule_on("payment_failed", extra="    while_collecting: [write_off]\n")
    assert problem_at(text, 8, 23) == "while_collecting of rule 'r' must be wait or write_off, not a list"


def test_while_collecting_on_a_skip_rule_is_refused() -> None:
    text = rule_on("payment_failed", action="skip", extra="    while_collecting: write_off\n")
    assert problem_at(text, 8, 23) == "rule 'r' skips, and only write_off rules use while_collecting; remove it"


def test_a_rule_built_positionally_still_waits() -> None:
    rule = parse_rules(rule_on("payment_failed")).rules[0]
    built = Rule(rule.name, rule.action, rule.condition, rule.on, None, None, 4, 5)
    assert built.while_collecting == "wait"


def test_a_ruleset_built_without_warnings_has_none() -> None:
    ruleset = parse_rules(rule_on("payment_failed"))
    assert RuleSet(version="v", mode="live", rules=ruleset.rules).warnings == ()


# --- apply_credits_first -------------------------------------------------------------------------


def test_apply_credits_first_defaults_to_false_and_reads_true() -> None:
    assert parse_rules(rule_on("payment_failed")).rules[0].apply_credits_first is False
    text = rule_on("payment_failed", extra="    apply_credits_first: true\n")
    assert parse_rules(text).rules[0].apply_credits_first is True


@pytest.mark.parametrize(("value", "shown"), [("yes", "the text 'yes'"), ("1", "the number 1"), ("[true]", "a list")])
def test_apply_credits_first_must_be_true_or_false(value: str, shown: str) -> None:
    text = rule_on("payment_failed", extra=f"    apply_credits_first: {value}\n")
    assert problem_at(text, 8, 26) == f"apply_credits_first of rule 'r' must be true or false, not {shown}"


def test_apply_credits_first_on_a_skip_rule_is_refused() -> None:
    text = rule_on("payment_failed", action="skip", extra="    apply_credits_first: true\n")
    assert problem_at(text, 8, 26) == "rule 'r' skips, and only write_off rules use apply_credits_first; remove it"
