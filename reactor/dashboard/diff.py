"""`/admin/rules/diff`: ops paste or upload a rules file and see what it would change on every open
invoice against the rules in force, as `reactor rules diff` shows it (reactor/console/rules_diff.py).

Routes on the dashboard's `admin` blueprint (reactor/dashboard/views.py): login required, the form
carries the session's CSRF token. A file that does not load is answered with its file:line:col
problems. The listing runs in the request, under the shared Chargebee rate limit; a listing the
budget cannot serve in time (`Throttled`) is answered with that reason, and the CLI (with
`--snapshot`) is the way for a site too big to list within a request.
"""

from __future__ import annotations

import logging
import posixpath
from datetime import datetime, timezone
from typing import Any

from flask import current_app, render_template, request

from ..config import Settings
from ..console.diff_formats import outcome_lines, preview_notes, triggers_line
from ..console.rules_diff import ListingFailed, diff_against_chargebee
from ..rules import RulesError, RuleSet, parse_rules
from ..rules.diff import CHANGE_MEANINGS, RulesDiff
from ..rules.event_types import SWEEP_EVENT_TYPE
from .views import admin, check_csrf, login_required, site_settings

log = logging.getLogger(__name__)

MAX_RULES_BYTES = 1024 * 1024
SHOWN_CHANGES = 500  # the page lists this many changed invoices; the CLI's --format csv lists all


@admin.get("/rules/diff")
@login_required
def rules_diff_form() -> Any:
    return render_template("admin/rules_diff.html", result=None, problems=[], error=None, text="")


@admin.post("/rules/diff")
@login_required
def rules_diff() -> Any:
    check_csrf()
    text, name, error = _submitted()
    page: dict[str, Any] = {"result": None, "problems": [], "error": error, "text": text}
    if error is not None:
        return render_template("admin/rules_diff.html", **page), 400
    try:
        new = parse_rules(text, filename=name)
    except RulesError as exc:
        page["problems"] = [str(problem) for problem in exc.problems]
        return render_template("admin/rules_diff.html", **page), 422
    try:
        base = current_app.extensions["reactor.rules"].current()
    except RulesError:
        page["error"] = "no rules are in force (the rules file is refused): there is nothing to compare with"
        return render_template("admin/rules_diff.html", **page), 409
    try:
        page["result"] = _diff(site_settings(), base, new)
    except ListingFailed as exc:
        page["error"] = str(exc)
        return render_template("admin/rules_diff.html", **page), 502
    return render_template("admin/rules_diff.html", **page)


def _submitted() -> tuple[str, str, str | None]:
    """(rules text, a name for its problems, why it cannot be read): the upload, else the pasted text."""
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        raw = upload.stream.read(MAX_RULES_BYTES + 1)
        name = posixpath.basename(upload.filename.replace("\\", "/")) or "uploaded.yaml"
    else:
        raw = (request.form.get("rules") or "").encode("utf-8", "surrogatepass")
        name = "pasted.yaml"
    if len(raw) > MAX_RULES_BYTES:
        return "", name, f"the rules file is larger than {MAX_RULES_BYTES} bytes"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "", name, f"{name} is not UTF-8 text"
    if not text.strip():
        return "", name, "paste a rules file or choose one to upload"
    return text, name, None


def _diff(settings: Settings, base: RuleSet, new: RuleSet) -> dict[str, Any]:
    """List every open invoice under the shared rate limit and compare, as the CLI does."""
    now = datetime.now(timezone.utc)
    diff, listing = diff_against_chargebee(settings, current_app.extensions["reactor.redis"], base, new, now)
    log.info("rules diff from the dashboard: %d invoices, %d changed", diff.invoices, diff.changed_invoices)
    return _view(diff, base, new, now, listing.calls)


def _view(diff: RulesDiff, base: RuleSet, new: RuleSet, now: datetime, calls: int) -> dict[str, Any]:
    kinds = [
        (trigger, kind, CHANGE_MEANINGS[kind], count, sorted(totals.by_kind.get(kind, {}).items()))
        for trigger, totals in diff.totals.items()
        for kind, count in totals.kind_counts().items()
        if count or trigger == SWEEP_EVENT_TYPE
    ]
    per_rule = [
        (rule, trigger, currency, sides["old"].get(currency, (0, 0)), sides["new"].get(currency, (0, 0)))
        for trigger, totals in diff.totals.items()
        for rule, sides in totals.by_rule.items()
        for currency in sorted(set(sides["old"]) | set(sides["new"]))
    ]
    return {
        "base": base,
        "new": new,
        "at": now.isoformat(timespec="seconds"),
        "calls": calls,
        "invoices": diff.invoices,
        "changed": diff.changed_invoices,
        "change_rows": len(diff.changes),
        "changes": diff.changes[:SHOWN_CHANGES],
        "kinds": kinds,
        "per_rule": per_rule,
        "outcomes": list(outcome_lines(diff)),
        "notes": preview_notes(diff),
        "not_previewed": diff.not_previewed,
        "triggers": triggers_line(diff),
        "newly": sorted(diff.newly_written_off.items()),
        "held": diff.held,
        "budgets": diff.budgets,
    }
