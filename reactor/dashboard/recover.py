"""The dashboard's Recover: from a row of the money-back table (the open recovery candidates), a
confirmation page that shows the payment seen and what recovering does; its POST (CSRF token, login)
runs `reactor recover` (reactor/console/recover.py) in the web process and says what came of it.

Registered on the admin blueprint (reactor/dashboard/views.py) when reactor/dashboard/__init__.py
imports this module, before any app registers the blueprint.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app, flash, redirect, render_template, request, session, url_for

from ..console.recover import RecoveryRefused, recover_payment
from ..ids import TRANSACTION, IdError
from ..jobs import build_context
from ..jobs.recovery import EXCESS, candidates_for
from ..keys import Keys
from .views import admin, check_csrf, checked_invoice_id, login_required, role_required, site_settings

log = logging.getLogger(__name__)


@admin.get("/invoices/<invoice_id>/recover")
@login_required
@role_required("approver")
def recover_confirm(invoice_id: str) -> Any:
    """The confirmation step: the money seen for our write-off, before anything is sent."""
    invoice_id = checked_invoice_id(invoice_id)
    settings, connection = site_settings(), current_app.extensions["reactor.redis"]
    seen = candidates_for(connection, Keys(settings.key_prefix), invoice_id)
    return render_template("admin/recover.html", invoice_id=invoice_id, candidates=seen, excess=EXCESS)


@admin.post("/invoices/<invoice_id>/recover")
@login_required
@role_required("approver")
def recover_invoice(invoice_id: str) -> Any:
    check_csrf()
    invoice_id = checked_invoice_id(invoice_id)
    transaction = (request.form.get("transaction") or "").strip() or None
    if transaction is not None and transaction != EXCESS:  # EXCESS: the person chose the excess payments
        try:
            TRANSACTION.path_segment(transaction)
        except IdError:
            flash("Not recovered: that is not a transaction id.", "error")
            return redirect(url_for("admin.recover_confirm", invoice_id=invoice_id))
    settings, connection = site_settings(), current_app.extensions["reactor.redis"]
    if not settings.api_base:  # build_context refuses it too; say it in the dashboard's words
        flash("Not recovered: no Chargebee is configured for the web process (CHARGEBEE_SITE).", "error")
        return redirect(url_for("admin.recover_confirm", invoice_id=invoice_id))
    actor = f"admin:{session.get('admin')}"
    try:
        result = recover_payment(build_context(settings, connection), invoice_id, actor, transaction)
    except RecoveryRefused as exc:
        flash(f"Not recovered: {exc}", "error")
        return redirect(url_for("admin.recover_confirm", invoice_id=invoice_id))
    log.info("payment for %s recovered from the dashboard", invoice_id, extra={"invoice_id": invoice_id})
    flash(f"{result.summary()}.", "ok")
    return redirect(url_for("admin.dashboard") + "#recovery")
