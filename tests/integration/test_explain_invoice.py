"""`reactor rules explain --invoice-id`: the invoice is fetched from Chargebee (the sandbox, over HTTP)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from reactor.cli import main
from tests.conftest import REPO
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
