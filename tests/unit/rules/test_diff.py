"""reactor/rules/diff.py: verdicts from decisions, every kind of change, budgets in listing order,
totals per trigger, currency and rule, held invoices, --fail-over and the exit codes."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from reactor.rules import decide, parse_rules
from reactor.rules.diff import (
    BLOCKED,
    DRY_RUN,
    HELD,
    NEWLY_BLOCKED,
    NEWLY_HELD,
    NEWLY_WRITTEN_OFF,
    NO_LONGER_WRITTEN_OFF,
    NO_MATCH,
    NOT_PREVIEWED,
    OTHER_COMMENT,
    OTHER_OUTCOME,
    OTHER_RULE,
    SKIP,
    UNKNOWN,
    WRITE_OFF,
    BudgetsUsed,
    InvoiceVerdicts,
    Verdict,
    apply_budgets,
    budgets_start,
    change_kind,
    compare,
    held_verdict,
    holds_line,
    verdict_of,
)
from reactor.rules.fail_over import (
    EXIT_CHANGES,
    EXIT_NO_CHANGE,
    EXIT_NOT_PREVIEWED,
    EXIT_OVER,
    FailOver,
    FailOverError,
    exit_code,
)
from reactor.rules.model import Limits
from reactor.rules.money import MoneyThreshold, to_major

from .helpers import NOW, invoice, rules

WO_A = Verdict(WRITE_OFF, "a", "comment a")


def row(
    invoice_id: str, old: Verdict, new: Verdict, amount: int = 1000, currency: str = "USD", on: str = "sweep"
) -> InvoiceVerdicts:
    return InvoiceVerdicts(invoice_id, "cus_1", currency, amount, to_major(amount, currency), old, new, on)


def sweep(inv: dict) -> dict:
    return {"id": "sweep-x", "event_type": "sweep", "content": {"invoice": inv}}


@pytest.mark.parametrize(
    ("old", "new", "kind"),
    [
        (Verdict(NO_MATCH), WO_A, NEWLY_WRITTEN_OFF),
        (Verdict(HELD, "a"), WO_A, NEWLY_WRITTEN_OFF),
        (WO_A, Verdict(NO_MATCH), NO_LONGER_WRITTEN_OFF),
        (WO_A, Verdict(SKIP, "protect"), NO_LONGER_WRITTEN_OFF),
        (WO_A, Verdict(DRY_RUN, "a"), NO_LONGER_WRITTEN_OFF),
        (WO_A, Verdict(WRITE_OFF, "b", "comment a"), OTHER_RULE),
        (WO_A, Verdict(WRITE_OFF, "a", "another"), OTHER_COMMENT),
        (WO_A, Verdict(HELD, "a"), NEWLY_HELD),
        (Verdict(NO_MATCH), Verdict(HELD, "a"), NEWLY_HELD),
        (WO_A, Verdict(BLOCKED, "a"), NEWLY_BLOCKED),
        (Verdict(SKIP, "s"), Verdict(BLOCKED, "a"), NEWLY_BLOCKED),
        (Verdict(SKIP, "s"), Verdict(NO_MATCH), OTHER_OUTCOME),
        (WO_A, WO_A, None),
        (Verdict(SKIP, "s"), Verdict(SKIP, "t"), None),
        (Verdict(BLOCKED, "a", reason="x"), Verdict(BLOCKED, "a", reason="y"), None),
        (Verdict(NO_MATCH), Verdict(UNKNOWN, "card"), NOT_PREVIEWED),
        (Verdict(UNKNOWN, "card"), WO_A, NOT_PREVIEWED),
        (Verdict(UNKNOWN, "card"), Verdict(UNKNOWN, "card"), NOT_PREVIEWED),  # the files differ after it
        (held_verdict("undone"), held_verdict("undone"), None),
    ],
)
def test_every_kind_of_change(old: Verdict, new: Verdict, kind: str | None) -> None:
    assert change_kind(old, new) == kind


def test_a_verdict_not_previewed_is_no_change_only_where_both_files_decide_alike() -> None:
    unknown = Verdict(UNKNOWN, "card")
    assert change_kind(unknown, unknown, alike=True) is None
    assert change_kind(Verdict(NO_MATCH), WO_A, alike=True) == NEWLY_WRITTEN_OFF  # alike files: cannot happen


def test_held_invoices_are_named_in_one_line() -> None:
    assert held_verdict("undone").outcome == HELD and "undone" in held_verdict("undone").reason
    assert holds_line({"i2": "undone", "i9": "x"}, ["i1", "i2"]) == (
        "held: 1 listed invoice is held and stays held under both files: i2 (undone) (Redis)"
    )
    many = holds_line({f"i{n}": "" for n in range(12)}, [f"i{n}" for n in range(12)], "the snapshot s.json")
    assert "12 listed invoices are held and stay held" in many and "i9 (no reason) and 2 more" in many
    assert holds_line({}, ["i1"]) == "held: no listed invoice is held (Redis)"
    assert holds_line(None, ["i1"]).startswith("held: unknown")


def test_verdicts_from_real_decisions() -> None:
    ruleset = rules(
        """
        - name: protect
          when: [invoice.customer_id: {starts_with: "ent_"}]
          action: skip
        - name: small
          when: [invoice.amount_due: {lte: 25}]
          action: write_off
        """
    )
    assert verdict_of(decide(ruleset, sweep(invoice()), NOW)).outcome == WRITE_OFF
    assert verdict_of(decide(ruleset, sweep(invoice(customer_id="ent_1")), NOW)).outcome == SKIP
    assert verdict_of(decide(ruleset, sweep(invoice(amount_due=99999)), NOW)).outcome == NO_MATCH
    collecting = verdict_of(decide(ruleset, sweep(invoice(dunning_status="in_progress")), NOW))
    assert (collecting.outcome, collecting.rule) == (BLOCKED, "small")
    missing = verdict_of(decide(ruleset, sweep(invoice()), NOW), facts_blocked="customer: 404")
    assert missing.outcome == BLOCKED and "facts missing" in missing.reason
    dry = rules("- name: small\n  when: [invoice.amount_due: {lte: 25}]\n  action: write_off\n", mode="dry_run")
    assert verdict_of(decide(dry, sweep(invoice()), NOW)).outcome == DRY_RUN


def test_day_budget_holds_in_listing_order_and_a_smaller_one_still_fits() -> None:
    limits = Limits(max_per_day=MoneyThreshold(per_currency={"USD": Decimal(25)}))
    rows = [row("i1", Verdict(NO_MATCH), WO_A, 1500), row("i2", Verdict(NO_MATCH), WO_A, 1500)]
    rows.append(row("i3", Verdict(NO_MATCH), WO_A, 1000))
    rows.append(row("i4", Verdict(NO_MATCH), WO_A, 500, "EUR"))  # no EUR budget: held
    out = apply_budgets(limits, rows, "new")
    assert [r.new.outcome for r in out] == [WRITE_OFF, HELD, WRITE_OFF, HELD]
    assert "would be passed today" in out[1].new.reason
    assert out[3].new.reason == "limits.max_per_day has no budget for EUR"
    assert [r.old for r in out] == [r.old for r in rows]  # the other side is left alone


def test_hour_budget_counts_write_offs_only() -> None:
    limits = Limits(max_count_per_hour=2)
    rows = [row(f"i{n}", Verdict(NO_MATCH), WO_A if n != 1 else Verdict(SKIP, "s")) for n in range(5)]
    out = apply_budgets(limits, rows, "new")
    assert [r.new.outcome for r in out] == [WRITE_OFF, SKIP, WRITE_OFF, HELD, HELD]
    assert out[3].new.reason == "limits.max_count_per_hour (2) reached this hour"
    assert apply_budgets(Limits(), rows, "new") == rows


def test_budgets_start_from_what_the_day_and_hour_have_used() -> None:
    limits = Limits(max_per_day=MoneyThreshold(per_currency={"USD": Decimal(25)}), max_count_per_hour=2)
    now = datetime(2026, 11, 26, 12, 30, tzinfo=timezone.utc)
    used = BudgetsUsed({"USD": 1200}, 1, "2026-11-26", "2026-11-26T12")
    rows = [row(f"i{n}", Verdict(NO_MATCH), WO_A, amount) for n, amount in enumerate([1500, 1000, 300, 100])]
    out = apply_budgets(limits, rows, "new", used.at(now))
    assert [r.new.outcome for r in out] == [HELD, WRITE_OFF, HELD, HELD]  # 12 + 15 > 25; 12 + 10; then 2 of 2 this hour
    assert "would be passed today" in out[0].new.reason and "max_count_per_hour" in out[2].new.reason
    assert budgets_start(used, limits, now) == (
        "budgets: USD 12.00 of 25 used today, 1 of 2 write-offs this hour (Redis, day 2026-11-26, hour 2026-11-26T12)"
    )
    # decided on another day: nothing of it counts, and the line says the counts are of another day
    later = datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc)
    assert used.at(later) == BudgetsUsed({}, 0, "2026-11-26", "2026-11-26T12")
    assert [r.new.outcome for r in apply_budgets(limits, rows, "new", used.at(later))] == [
        WRITE_OFF,
        WRITE_OFF,
        HELD,
        HELD,
    ]
    assert "USD 0.00 of 25 used today" in budgets_start(used, limits, later)
    assert "of another day or hour" in budgets_start(used, limits, later)
    assert "from zero" in budgets_start(None, limits, now)
    assert budgets_start(used, Limits(), now).startswith("budgets: none")


def test_budget_counts_a_snapshot_kept_read_back() -> None:
    assert BudgetsUsed.from_dict(None, "the snapshot") is None  # a snapshot from before they were kept
    good = BudgetsUsed({"USD": 12}, 1, "2026-11-26", "2026-11-26T12", "the snapshot")
    assert BudgetsUsed.from_dict(good.as_dict(), "the snapshot") == good


GOOD_COUNTS = {"spent": {"USD": 12}, "count": 1, "day": "2026-11-26", "hour": "2026-11-26T12"}


@pytest.mark.parametrize(
    ("kept", "says"),
    [
        ([], "budgets_used must be an object"),
        ({**GOOD_COUNTS, "spent": {"USD": "12"}}, r"budgets_used.spent\['USD'\] must be a whole number from 0"),
        ({**GOOD_COUNTS, "spent": {"USD": -1200}}, r"budgets_used.spent\['USD'\] must be a whole number from 0"),
        ({**GOOD_COUNTS, "spent": {"USD": 2**63}}, r"budgets_used.spent\['USD'\] must be a whole number from 0"),
        ({**GOOD_COUNTS, "spent": [12]}, "budgets_used.spent must be an object"),
        ({**GOOD_COUNTS, "count": True}, "budgets_used.count must be a whole number"),
        ({**GOOD_COUNTS, "count": -5}, "budgets_used.count must be a whole number"),
        ({**GOOD_COUNTS, "count": 1.5}, "budgets_used.count must be a whole number"),
        ({**GOOD_COUNTS, "day": "d"}, "budgets_used.day must be a UTC day"),
        ({**GOOD_COUNTS, "day": "2026-11-6"}, "budgets_used.day must be a UTC day"),
        ({**GOOD_COUNTS, "hour": "2026-11-26T12:00"}, "budgets_used.hour must be a UTC hour"),
    ],
)
def test_budget_counts_a_snapshot_kept_unreadably_are_refused(kept, says) -> None:
    """Not read as "from zero": a negative or unreadable count would give a budget room it does not have."""
    with pytest.raises(ValueError, match=says):
        BudgetsUsed.from_dict(kept, "the snapshot")


def test_totals_per_currency_per_rule_and_outcome_counts() -> None:
    diff = compare(
        [
            row("i1", Verdict(NO_MATCH), WO_A, 1000),
            row("i2", Verdict(NO_MATCH), WO_A, 250, "EUR"),
            row("i3", WO_A, Verdict(NO_MATCH), 700),
            row("i4", WO_A, Verdict(WRITE_OFF, "b"), 300),
            row("i5", Verdict(SKIP, "s"), Verdict(SKIP, "s"), 100),
            row("i6", Verdict(NO_MATCH), Verdict(NO_MATCH), 500, "JPY"),
        ]
    )
    assert [c.row.invoice_id for c in diff.changes] == ["i1", "i2", "i3", "i4"]
    assert diff.by_kind[NEWLY_WRITTEN_OFF] == {"USD": (1, Decimal("10.00")), "EUR": (1, Decimal("2.50"))}
    assert diff.by_kind[NO_LONGER_WRITTEN_OFF] == {"USD": (1, Decimal("7.00"))}
    assert diff.written_off["old"] == {"USD": (2, Decimal("10.00"))}
    assert diff.written_off["new"]["USD"] == (2, Decimal("13.00"))
    assert diff.by_rule["a"]["old"] == {"USD": (2, Decimal("10.00"))}
    assert diff.by_rule["b"]["new"] == {"USD": (1, Decimal("3.00"))}
    assert diff.outcomes["old"][WRITE_OFF] == 2 and diff.outcomes["new"][WRITE_OFF] == 3
    assert diff.outcomes["new"][NO_MATCH] == 2 and diff.outcomes["new"][SKIP] == 1
    assert diff.kind_counts()[OTHER_RULE] == 1


def test_totals_per_trigger_and_newly_written_off_once_per_invoice() -> None:
    """i1 would be newly written off on the sweep and on a next payment_failed: counted once for
    --fail-over (it is written off at most once); the top-level totals are the sweep's."""
    pending = Verdict(NO_MATCH)
    diff = compare(
        [
            row("i1", pending, WO_A, 6000),
            row("i1", pending, WO_A, 6000, on="payment_failed"),
            row("i2", pending, pending, 2000),
            row("i2", pending, WO_A, 2000, on="payment_failed"),
            row("i3", WO_A, WO_A, 100, on="payment_failed"),
        ]
    )
    assert [(c.row.invoice_id, c.row.on) for c in diff.changes] == [("i1", "sweep"), ("i1", "payment_failed"),
                                                                    ("i2", "payment_failed")]  # fmt: skip
    assert diff.by_kind[NEWLY_WRITTEN_OFF] == {"USD": (1, Decimal("60.00"))}
    assert diff.totals["payment_failed"].by_kind[NEWLY_WRITTEN_OFF] == {"USD": (2, Decimal("80.00"))}
    assert diff.totals["payment_failed"].written_off["old"] == {"USD": (1, Decimal("1.00"))}
    assert diff.newly_written_off == {"USD": (2, Decimal("80.00"))}
    assert (diff.invoices, diff.changed_invoices) == (3, 2)
    assert exit_code(diff, FailOver.parse(["80"])) == EXIT_CHANGES
    assert exit_code(diff, FailOver.parse(["79.99"])) == EXIT_OVER  # 60 + 20, not 60 + 60 + 20


def test_a_change_not_previewed_exits_4_and_over_fail_over_still_exits_3() -> None:
    unknown = compare([row("i1", Verdict(NO_MATCH), Verdict(UNKNOWN, "card"), on="payment_failed")])
    assert unknown.not_previewed and exit_code(unknown, None) == EXIT_NOT_PREVIEWED
    both = compare(
        [row("i1", Verdict(NO_MATCH), WO_A, 60000), row("i2", Verdict(NO_MATCH), Verdict(UNKNOWN, "card"), on="x")]
    )
    assert exit_code(both, FailOver.parse(["500"])) == EXIT_OVER
    assert exit_code(both, FailOver.parse(["1000"])) == EXIT_NOT_PREVIEWED


def test_fail_over_and_exit_codes() -> None:
    unchanged = compare([row("i1", WO_A, WO_A)])
    assert exit_code(unchanged, None) == EXIT_NO_CHANGE
    diff = compare([row("i1", Verdict(NO_MATCH), WO_A, 60000), row("i2", Verdict(NO_MATCH), WO_A, 500, "EUR")])
    assert exit_code(diff, None) == EXIT_CHANGES
    assert exit_code(diff, FailOver.parse(["1000"])) == EXIT_CHANGES
    assert exit_code(diff, FailOver.parse(["500"])) == EXIT_OVER  # 600 USD newly written off
    per = FailOver.parse(["USD=1000"])
    assert per is not None and per.exceeded(diff) == ["1 newly written off for 5.00 EUR, over --fail-over 0 EUR"]
    assert exit_code(diff, FailOver.parse(["usd=1000", "10"])) == EXIT_CHANGES
    no_longer = compare([row("i1", WO_A, Verdict(NO_MATCH), 99999)])
    assert exit_code(no_longer, FailOver.parse(["0"])) == EXIT_CHANGES  # writing off less is never "over"
    assert FailOver.parse([]) is None


@pytest.mark.parametrize("bad", ["", "abc", "-5", "US=5", "USD=", "NaN", "1e999999999", "USD=x", "=500", "USD=-5"])
def test_fail_over_refuses_what_it_cannot_read(bad: str) -> None:
    with pytest.raises(FailOverError):
        FailOver.parse([bad])


@pytest.mark.parametrize(
    ("values", "says"),
    [
        (["100", "200"], "given twice without a currency"),
        (["USD=100", "usd=200"], "given twice for USD"),
        (["USD=100", "100", "USD=100"], "given twice for USD"),
    ],
)
def test_fail_over_refuses_a_currency_given_twice(values: list[str], says: str) -> None:
    """The second would silently replace the first: which one the CI job meant is not known."""
    with pytest.raises(FailOverError, match=says):
        FailOver.parse(values)


def test_a_file_changes_nothing_against_itself() -> None:
    ruleset = parse_rules("version: 1\nmode: live\nrules:\n  - name: a\n    when: [invoice.amount_due: {lte: 25}]\n"
                          "    action: write_off\n")  # fmt: skip
    verdicts = [verdict_of(decide(ruleset, sweep(invoice(id=f"i{n}", amount_due=n * 500)), NOW)) for n in range(8)]
    diff = compare([row(f"i{n}", v, v, n * 500) for n, v in enumerate(verdicts)])
    assert not diff.changed and diff.outcomes["old"] == diff.outcomes["new"]
