"""Budgets on top of rules: a write-off that would pass `limits.max_per_day` is held, not lost and not
failed; `reactor held release` sends it. Real worker, real sandbox, the real CLI."""

from __future__ import annotations

import pytest
import requests

from reactor.jobs.audit import AuditFilter, AuditLog
from reactor.jobs.held import list_held
from tests.helpers import wait_for
from tests.integration.helpers import exhausted_invoice, make_event, outcomes, post_event
from tests.integration.ops_helpers import reactor_process

pytestmark = pytest.mark.integration

BUDGET_RULES = """\
version: 1
mode: live
limits:
  max_write_off: {USD: 500}
  max_per_day: {USD: 30}
rules:
  - name: dunning-exhausted
    when:
      - invoice.dunning_status: exhausted
    action: write_off
"""


def test_the_daily_budget_holds_the_write_off_that_would_pass_it_and_release_sends_it(
    sandbox, web, redis_conn, start_worker, rules_file, settings
):
    rules_file(BUDGET_RULES)
    first, second, third = (exhausted_invoice(sandbox) for _ in range(3))  # 12.50 USD each, budget 30 USD
    start_worker()
    for invoice in (first, second):
        assert post_event(web.webhook_url, make_event(invoice)).status_code == 200
        wait_for(lambda i=invoice: "written_off" in outcomes(redis_conn, i["id"]), what="written_off")
    assert post_event(web.webhook_url, make_event(third)).status_code == 200
    wait_for(lambda: "held" in outcomes(redis_conn, third["id"]), what="the third write-off held")

    assert len(sandbox.state.write_off_calls()) == 2
    assert sandbox.state.get_invoice(third["id"])["status"] == "not_paid"
    [item] = list_held(redis_conn, settings.key_prefix)
    assert (item.invoice_id, item.rule, item.amount_due, item.currency) == (
        third["id"],
        "dunning-exhausted",
        1250,
        "USD",
    )
    assert "max_per_day" in (item.reason or "")
    ready = requests.get(f"{web.url}/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["checks"]["held"]["count"] == 1
    listed = reactor_process(settings, "held", "list")
    assert listed.returncode == 0 and third["id"] in listed.stdout

    released = reactor_process(settings, "held", "release", third["id"])
    assert released.returncode == 0, released.stderr
    wait_for(lambda: "written_off" in outcomes(redis_conn, third["id"]), what="the released write-off")
    assert len(sandbox.state.write_off_calls()) == 3
    assert list_held(redis_conn, settings.key_prefix) == []
    assert outcomes(redis_conn, third["id"]).count("released") == 1
    released_record = next(
        r for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=third["id"])) if r.outcome == "released"
    )
    assert "@" in (released_record.reason or ""), "the audit says who released it"


def test_the_hourly_count_holds_the_write_off_over_it(sandbox, web, redis_conn, start_worker, rules_file, settings):
    rules_file(BUDGET_RULES.replace("max_per_day: {USD: 30}", "max_count_per_hour: 1"))
    first, second = exhausted_invoice(sandbox), exhausted_invoice(sandbox)
    start_worker()
    assert post_event(web.webhook_url, make_event(first)).status_code == 200
    wait_for(lambda: "written_off" in outcomes(redis_conn, first["id"]), what="written_off")
    assert post_event(web.webhook_url, make_event(second)).status_code == 200
    wait_for(lambda: "held" in outcomes(redis_conn, second["id"]), what="held")
    assert len(sandbox.state.write_off_calls()) == 1
    assert "max_count_per_hour" in (list_held(redis_conn, settings.key_prefix)[0].reason or "")
