"""`reactor rules explain --invoice-id`: the invoice is fetched from Chargebee (the sandbox, over HTTP)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from reactor.cli import main
from tests.helpers import REPO
from tests.integration.helpers import exhausted_invoice

pytestmark = pytest.mark.integration


def explain(settings, *args: str):
    env = {
        "CHARGEBEE_API_BASE": settings.chargebee_api_base,
        "CHARGEBEE_API_KEY": settings.chargebee_api_key,
        "REACTOR_RULES": str(REPO / "rules.yaml"),
        "REACTOR_LOG_FORMAT": "text",
    }
    return CliRunner().invoke(main, ["rules", "explain", *args], env=env, catch_exceptions=False)


def test_explain_by_invoice_id_decides_on_the_invoice_chargebee_has(sandbox, settings):
    invoice = exhausted_invoice(sandbox, amount_due=1250, total=1250)
    result = explain(settings, "--invoice-id", invoice["id"], "--event-type", "payment_failed")
    assert result.exit_code == 0, result.output
    assert f"invoice {invoice['id']} fetched from {settings.chargebee_api_base}" in result.output
    assert "dunning-exhausted-small-balance" in result.output
    assert "write_off" in result.output
    assert [c["method"] for c in sandbox.state.calls(path_contains=invoice["id"])] == ["GET"]


def test_explain_by_an_unknown_invoice_id_says_so(sandbox, settings):
    result = explain(settings, "--invoice-id", "inv_does_not_exist")
    assert result.exit_code == 1
    assert "cannot fetch invoice inv_does_not_exist" in result.output


@pytest.mark.parametrize(("segment", "decided"), [("enterprise", "protect-enterprise"), ("smb", None)])
def test_explain_by_invoice_id_fetches_the_customer_a_rule_reads_as_the_worker_does(
    sandbox, settings, segment, decided
):
    invoice = exhausted_invoice(sandbox, amount_due=1250, total=1250, customer_id="cus_seg")
    sandbox.state.add_customer(id="cus_seg", cf_segment=segment)
    result = explain(settings, "--invoice-id", invoice["id"], "--event-type", "invoice_updated")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # the console wraps long lines
    assert "fetched customer=cus_seg" in text
    assert len(sandbox.state.calls(path_contains="/customers/cus_seg", method="GET")) == 1
    assert f"'{segment}'" in text  # the fetched value is shown against the condition
    if decided:
        assert decided in text.split("decision", 1)[-1]


def test_explain_by_invoice_id_says_when_the_worker_would_stop_for_missing_facts(sandbox, settings):
    invoice = exhausted_invoice(sandbox, amount_due=1250, total=1250, customer_id="cus_gone")
    result = explain(settings, "--invoice-id", invoice["id"], "--event-type", "invoice_updated")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # the console wraps long lines
    assert "customer unknown: Chargebee has no customer cus_gone (404)" in text
    assert "the worker would not write it off (facts_missing): skip rule protect-enterprise" in text


@pytest.mark.parametrize("bad_id", ["..", ".", "", "inv/../x", " inv_1", "inv 1", "inv_1\n"])
def test_an_id_that_is_no_invoice_id_is_a_usage_error_before_chargebee_is_asked(sandbox, settings, bad_id):
    """`--invoice-id ..` used to send GET /api/v2/ (requests resolves /invoices/.. to the API's root)."""
    result = explain(settings, "--invoice-id", bad_id)
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--invoice-id'" in result.output
    assert "is not a Chargebee invoice id (invoice id: at most 50 ASCII letters" in " ".join(result.output.split())
    assert sandbox.state.calls() == []
