"""The dashboard's Release of a held write-off: from a row of the held table, a confirmation page
that shows what is held and why and asks for a reason; its POST (CSRF token, login) runs the code
`reactor held release` runs (reactor/jobs/held.py `release`): the hold removed, the release job
queued and the `released` audit record with who (`admin:<user>`) and why, in one transaction.

Registered on the admin blueprint (reactor/dashboard/views.py) when reactor/dashboard/__init__.py
imports this module, before any app registers the blueprint.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app, flash, redirect, render_template, request, session, url_for
from rq import Queue

from ..jobs.held import MAX_REASON, get_held, list_held, release
from .views import admin, check_csrf, checked_invoice_id, login_required, role_required, site_settings

log = logging.getLogger(__name__)


@admin.get("/held/<invoice_id>/release")
@login_required
@role_required("approver")
def release_confirm(invoice_id: str) -> Any:
    """The confirmation step: what is held and why, and a reason to give before it is released."""
    invoice_id = checked_invoice_id(invoice_id)
    settings, connection = site_settings(), current_app.extensions["reactor.redis"]
    item = next((h for h in list_held(connection, settings.key_prefix) if h.invoice_id == invoice_id), None)
    return render_template("admin/release.html", invoice_id=invoice_id, item=item, max_reason=MAX_REASON)


@admin.post("/held/<invoice_id>/release")
@login_required
@role_required("approver")
def release_invoice(invoice_id: str) -> Any:
    check_csrf()
    invoice_id = checked_invoice_id(invoice_id)
    reason = " ".join(request.form.get("reason", "").split())
    if not reason or len(reason) > MAX_REASON:
        flash(f"Give a reason (at most {MAX_REASON} characters): it goes into the audit trail.", "error")
        return redirect(url_for("admin.release_confirm", invoice_id=invoice_id))
    settings, connection = site_settings(), current_app.extensions["reactor.redis"]
    queue = Queue(settings.queue_name, connection=connection)
    actor = f"admin:{session.get('admin')}"
    if not release(connection, queue, [invoice_id], actor, prefix=settings.key_prefix, reason=reason):
        item = get_held(connection, invoice_id, settings.key_prefix)
        if item is not None and item.awaits_approval:
            flash(f"Not released: {invoice_id} waits for approvers; approve or decline it there.", "error")
            return redirect(url_for("admin.approvals_queue"))
        flash(f"Not released: {invoice_id} is not held (already released, or never held).", "error")
        return redirect(url_for("admin.dashboard") + "#held")
    log.info("held write-off of %s released from the dashboard", invoice_id, extra={"invoice_id": invoice_id})
    flash(
        f"Released {invoice_id}: a worker fetches the invoice fresh and decides again on the rules in force "
        "(past the budget that held it).",
        "ok",
    )
    return redirect(url_for("admin.dashboard") + "#held")
