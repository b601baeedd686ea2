"""`/admin/approvals`: the write-offs that wait for approvers (rules.yaml `approvals:` tiers), with
their amount, tier, approvers so far and how long they have waited, a link to each invoice's trace,
and Approve / Decline for approvers. The POSTs (login, approver role, CSRF token) run the code of
`reactor approvals approve|decline` (reactor/console/approvals.py) as the logged-in user.

Registered on the admin blueprint (reactor/dashboard/views.py) when reactor/dashboard/__init__.py
imports this module, before any app registers the blueprint.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from rq import Queue

from ..console.approvals import ApprovalRefused, approve, decline, waiting
from ..jobs.held import MAX_REASON
from .views import admin, check_csrf, checked_invoice_id, current_person, login_required, role_required, site_settings

log = logging.getLogger(__name__)


@admin.get("/approvals")
@login_required
def approvals_queue() -> Any:
    settings, connection = site_settings(), current_app.extensions["reactor.redis"]
    now = datetime.now(timezone.utc)
    items = [{"item": item, "waited": item.waited(now)} for item in waiting(connection, settings.key_prefix)]
    return render_template(
        "admin/approvals.html",
        items=items,
        alert_after=settings.approval_alert_after,
        max_reason=MAX_REASON,
    )


def _act(invoice_id: str, action: str) -> Any:
    check_csrf()
    invoice_id = checked_invoice_id(invoice_id)
    reason = " ".join(request.form.get("reason", "").split())[:MAX_REASON]
    settings, connection = site_settings(), current_app.extensions["reactor.redis"]
    user = current_person()
    try:
        if action == "approve":
            queue = Queue(settings.queue_name, connection=connection)
            done = approve(
                connection,
                queue,
                invoice_id,
                user,
                prefix=settings.key_prefix,
                approval_ttl=settings.approval_ttl,
                reason=reason,
            )
        else:
            done = decline(connection, invoice_id, user, prefix=settings.key_prefix, reason=reason)
    except ApprovalRefused as exc:
        flash(f"Not {action}d: {exc}", "error")
    else:
        log.info("%s of %s by %s from the dashboard", action, invoice_id, user, extra={"invoice_id": invoice_id})
        flash(done.summary(), "ok")
    return redirect(url_for("admin.approvals_queue"))


@admin.post("/approvals/<invoice_id>/approve")
@login_required
@role_required("approver")
def approve_write_off(invoice_id: str) -> Any:
    return _act(invoice_id, "approve")


@admin.post("/approvals/<invoice_id>/decline")
@login_required
@role_required("approver")
def decline_write_off(invoice_id: str) -> Any:
    return _act(invoice_id, "decline")
