"""The dashboard's Undo: from a `written_off` row of recent decisions, a confirmation page that shows
what the reactor recorded of its write-off and asks for a reason; its POST (CSRF token, login) runs
`reactor undo` (reactor/console/undo.py) in the web process and says what came of it.

Registered on the admin blueprint (reactor/dashboard/views.py) when reactor/dashboard/__init__.py
imports this module, before any app registers the blueprint.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import current_app, flash, redirect, render_template, request, session, url_for

from ..config import Settings
from ..console.invoice_state import last_write_off
from ..console.undo import UndoRefused, undo_write_off
from ..jobs import build_context
from ..jobs.audit import AuditLog
from ..jobs.held import MAX_REASON
from ..keys import Keys
from .views import admin, check_csrf, checked_invoice_id, login_required, role_required, site_settings

log = logging.getLogger(__name__)


def _mark(invoice_id: str, kind: str) -> dict[str, Any] | None:
    """The `written_off` or `undone` mark the jobs keep for the invoice (reactor/keys.py)."""
    keys = Keys(site_settings().key_prefix)
    key = keys.written_off(invoice_id) if kind == "written_off" else keys.undone(invoice_id)
    raw = current_app.extensions["reactor.redis"].get(key)
    try:
        value = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _flag(settings: Settings) -> str:
    return f" --site {settings.site_name}" if settings.several_sites else ""


@admin.get("/invoices/<invoice_id>/undo")
@login_required
@role_required("approver")
def undo_confirm(invoice_id: str) -> Any:
    """The confirmation step: what we wrote off, and a reason to give before anything is sent."""
    invoice_id = checked_invoice_id(invoice_id)
    connection = current_app.extensions["reactor.redis"]
    records, _scanned = AuditLog(connection, Keys(site_settings().key_prefix).audit()).for_invoice(invoice_id)
    return render_template(
        "admin/undo.html",
        user=session.get("admin"),
        invoice_id=invoice_id,
        written_off=last_write_off(records),
        mark=_mark(invoice_id, "written_off"),
        undone=_mark(invoice_id, "undone"),
        max_reason=MAX_REASON,
    )


@admin.post("/invoices/<invoice_id>/undo")
@login_required
@role_required("approver")
def undo_invoice(invoice_id: str) -> Any:
    check_csrf()
    invoice_id = checked_invoice_id(invoice_id)
    reason = " ".join(request.form.get("reason", "").split())
    if not reason or len(reason) > MAX_REASON:
        flash(f"Give a reason (at most {MAX_REASON} characters): it goes into the audit trail.", "error")
        return redirect(url_for("admin.undo_confirm", invoice_id=invoice_id))
    settings, connection = site_settings(), current_app.extensions["reactor.redis"]
    actor = f"admin:{session.get('admin')}"
    if not settings.api_base:  # build_context refuses it too; say it in the dashboard's words
        flash("Not undone: no Chargebee is configured for the web process (CHARGEBEE_SITE).", "error")
        return redirect(url_for("admin.undo_confirm", invoice_id=invoice_id))
    try:
        result = undo_write_off(build_context(settings, connection), invoice_id, actor, reason)
    except UndoRefused as exc:
        flash(f"Not undone: {exc}", "error")
        return redirect(url_for("admin.undo_confirm", invoice_id=invoice_id))
    log.info("write-off of %s undone from the dashboard", invoice_id, extra={"invoice_id": invoice_id})
    flash(
        f"{result.summary()}. Held (reason undone) until released: reactor held release{_flag(settings)} {invoice_id}.",
        "ok",
    )
    return redirect(url_for("admin.dashboard") + "#held")
