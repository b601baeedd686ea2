"""`/admin/invoices/<id>`: the timeline of one invoice, as `reactor trace` prints it
(reactor/console/trace/), linked from every invoice the dashboard lists. It starts with the reactor's
standing on the invoice in one line and the invoice's status at Chargebee now, fetched live
(reactor/console/invoice_state.py). An event id finds its invoice's page; an event that names no
invoice (answered `ignored` or 400) has a page of its own, with the receipt of its delivery. Routes
on the dashboard's `admin` blueprint (reactor/dashboard/views.py), login required."""

from __future__ import annotations

from typing import Any

from flask import current_app, redirect, render_template, url_for

from .. import ids
from ..console.invoice_state import chargebee_status, standing
from ..console.trace import build_timeline, find_invoice, read_receipt, read_sources
from .views import admin, login_required, site_settings


@admin.get("/invoices/<some_id>")
@login_required
def invoice_trace(some_id: str) -> Any:
    settings = site_settings()
    connection = current_app.extensions["reactor.redis"]
    if not (ids.INVOICE.accepts(some_id) or ids.EVENT.accepts(some_id)):
        page = {"invoice_id": some_id, "steps": [], "error": "not an invoice or event id"}
        return render_template("admin/invoice.html", **page), 404
    invoice_id = find_invoice(connection, settings, some_id)
    if invoice_id is None:
        receipt = read_receipt(connection, settings, some_id)
        if receipt is not None:  # an event answered `ignored` or 400: its receipt, on its own page
            steps = build_timeline([receipt], [])
            return render_template("admin/invoice.html", invoice_id=some_id, steps=steps, error=None, event_only=True)
        error = "nothing kept about this id: no invoice or event of that id (expired, or mistyped?)"
        return render_template("admin/invoice.html", invoice_id=some_id, steps=[], error=error), 404
    if invoice_id != some_id:  # an event id: the page of its invoice, at its own address
        return redirect(url_for("admin.invoice_trace", some_id=invoice_id))
    sources = read_sources(connection, settings, invoice_id)
    note = " ".join(sources.notes()) or None
    return render_template(
        "admin/invoice.html",
        invoice_id=invoice_id,
        steps=sources.timeline(),
        error=None,
        note=note,
        standing=standing(sources.records, sources.held),
        chargebee=chargebee_status(settings, connection, invoice_id),
    )
