"""What the rules-diff tests share (CLI and dashboard): two rules files and a small site on which
every kind of change happens once."""

from __future__ import annotations

import time

PROTECT = """\
  - name: protect-enterprise
    when:
      - customer.cf_segment: enterprise
    action: skip
"""
BASE = f"""\
version: 1
mode: live
limits:
  max_write_off: {{USD: 500, EUR: 500}}
rules:
{PROTECT}  - name: exhausted-small
    when:
      - invoice.dunning_status: exhausted
      - invoice.amount_due: {{lte: 25}}
    action: write_off
"""
NEW = f"""\
version: 1
mode: live
limits:
  max_write_off: {{USD: 500, EUR: 500}}
  max_per_day: {{USD: 100, EUR: 100}}
rules:
{PROTECT}  - name: no-euro
    when:
      - invoice.currency_code: EUR
    action: skip
  - name: exhausted-medium
    when:
      - invoice.dunning_status: {{in: [exhausted, in_progress]}}
      - invoice.amount_due: {{lte: 80}}
    action: write_off
"""
AT = "2026-11-26T12:00:00Z"

# invoice id → (fields, the change expected)
INVOICES = {
    "inv_a": ({"amount_due": 1000}, "other_rule"),  # exhausted-small → exhausted-medium
    "inv_b": ({"amount_due": 5000}, "newly_written_off"),  # 10 + 50 of the 100 USD day budget
    "inv_c": ({"amount_due": 7000}, "held"),  # would pass the 100 USD budget
    "inv_d": ({"amount_due": 2000, "dunning_status": "in_progress", "next_retry_at": 4102444800}, "blocked"),
    "inv_e": ({"amount_due": 1500, "customer_id": "cus_ent"}, None),  # protected under both (customer fetched)
    "inv_f": ({"amount_due": 2000, "currency_code": "EUR"}, "no_longer_written_off"),
    "inv_g": ({"amount_due": 9000}, None),  # over both rules' amounts
}


def seed_site(sandbox) -> None:
    """The invoices of INVOICES and their two customers; a paid invoice the listing leaves out."""
    sandbox.state.add_customers([{"id": "cus_smb", "cf_segment": "smb"}, {"id": "cus_ent", "cf_segment": "enterprise"}])
    day = int(time.time()) - 30 * 86400
    specs = []
    for n, (invoice_id, (fields, _)) in enumerate(INVOICES.items()):
        spec = {"id": invoice_id, "status": "not_paid", "dunning_status": "exhausted", "currency_code": "USD"}
        spec |= {"customer_id": "cus_smb", "date": day + n, "total": fields["amount_due"], **fields}
        specs.append(spec)
    sandbox.state.add_invoices(specs)
    sandbox.state.add_invoice(id="inv_paid", status="paid", total=1000)  # not open: not listed
