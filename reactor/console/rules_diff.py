"""`reactor rules diff`: list every open invoice as the sweep lists them, decide on each under two
rules files at one instant on every trigger of the preview plan, and compare (the comparison is
pure: reactor/rules/diff.py). A snapshot of the listing lets it diff again without Chargebee.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import redis

from ..chargebee import ChargebeeClient, ChargebeeError
from ..config import Settings
from ..jobs.budget import budgets_used
from ..jobs.context import build_rate_limit
from ..jobs.facts import RunFacts
from ..jobs.preview import held_invoices, next_event, preview_decision
from ..jobs.sweep import pages, sweep_event
from ..rules import RuleSet, decide
from ..rules.diff import (
    BLOCKED,
    COUNTER_MAX,
    UNKNOWN,
    BudgetsUsed,
    InvoiceVerdicts,
    RulesDiff,
    Verdict,
    apply_budgets,
    budgets_start,
    compare,
    held_verdict,
    holds_line,
    is_counter,
    verdict_of,
)
from ..rules.event_types import SWEEP_EVENT_TYPE
from ..rules.money import to_major
from ..rules.preview import preview_plan

SNAPSHOT_FORMAT = "reactor-rules-diff-snapshot/1"
# The most a snapshot may hold, decompressed: 100,000 open invoices with their customers take about
# 200 MB of JSON (10,000 take ~20 MB). A file past it is refused before it is parsed; checking it
# reads the file through once in chunks, so a gzip bomb costs CPU, not memory.
MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024
_CHUNK = 1024 * 1024
MAX_SNAPSHOT_NESTING = 64
"""The deepest a snapshot's JSON may nest, its own object being level 1. Chargebee's invoices,
customers and subscriptions nest a few levels; deciding on an invoice copies it recursively
(reactor/jobs/facts.py `fetch_facts`), so a deeper one is refused when read rather than failing there."""


class SnapshotError(Exception):
    """A snapshot that cannot be read or written; the message names the file and why, in one line."""


class ListingFailed(Exception):
    """Chargebee could not be listed (or asked for a fact); the message says why, in one line."""


class NotInSnapshot(Exception):
    """A customer or subscription an offline diff needs that the snapshot does not hold."""


@dataclass
class Listing:
    """The open invoices in listing order, and the customers and subscriptions fetched for them
    (`None` for one Chargebee did not have). A snapshot (`--snapshot FILE`) keeps it all, so
    `--invoices FILE` can diff again without Chargebee.

    `budgets`: what today's counters had used at the diff's instant (reactor/jobs/budget.py
    `budgets_used`, read only); a snapshot taken before it kept them starts from zero and says so.
    `held`: likewise, a snapshot taken before it kept the held list says the holds are unknown."""

    invoices: list[dict[str, Any]] = field(default_factory=list)
    customers: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    taken_at: str = ""
    source: str = ""
    calls: int = 0  # Chargebee calls made for this run (0 offline)
    budgets: BudgetsUsed | None = None  # what the budget counters held; None: from zero
    held: dict[str, str] | None = None  # the held list, invoice id → reason; None: not known
    held_source: str = "Redis"  # where `held` was read


class FactSource(RunFacts):
    """The run's facts (reactor/jobs/facts.py `RunFacts`: each fetched once a run from Chargebee, a
    404 as None) kept in the listing, for its snapshot, and counted with its calls; offline (no
    client) only the listing's: a resource the snapshot lacks (other rules read other facts) blocks
    the write-off with that reason."""

    def __init__(self, listing: Listing, client: ChargebeeClient | None) -> None:
        super().__init__(client, listing.customers, listing.subscriptions)
        self.listing = listing

    def fetch(self, kind: str, resource_id: str) -> dict[str, Any]:
        if self.client is None:
            raise NotInSnapshot(f"{kind} {resource_id} is not in the snapshot (taken under other rules)")
        self.listing.calls += 1
        return super().fetch(kind, resource_id)


def list_open_invoices(
    client: ChargebeeClient, listing: Listing, on_page: Callable[[int], None] = lambda count: None
) -> Listing:
    """Every open invoice, as the sweep lists them (reactor/jobs/sweep.py `pages`), appended to
    `listing`; one call a page, through the caller's client, so the shared rate limit applies."""
    for invoices, _ in pages(client):
        listing.calls += 1
        listing.invoices.extend(invoices)
        on_page(len(invoices))
    return listing


def verdict(ruleset: RuleSet, event: dict[str, Any], now: datetime, facts: FactSource) -> Verdict:
    """The verdict on one listed invoice's event under one rules file, facts completed as the sweep's
    dry run completes them (reactor/jobs/preview.py `preview_decision`): the customer or
    subscription a rule reads is fetched only when it could change a write-off, and a write-off that
    would rest on a fact that could not be had is blocked (`facts_missing`), as the worker would
    block it."""
    try:
        previewed = preview_decision(facts, ruleset, event, now)
    except NotInSnapshot as exc:
        return Verdict(BLOCKED, decide(ruleset, event, now).rule, None, f"facts missing: {exc}")
    if previewed.blind is not None:
        return Verdict(UNKNOWN, previewed.blind.rule, None, previewed.blind.reason())
    return verdict_of(previewed.decision, previewed.facts_blocked, ruleset.approvals)


@dataclass(frozen=True)
class DiffRun:
    """What every invoice of one diff is decided with: both rules files, the instant, the run's facts,
    and the held list (invoice id → reason)."""

    base: RuleSet
    new: RuleSet
    now: datetime
    facts: FactSource
    held: dict[str, str]


def invoice_verdicts(run: DiffRun, invoice: dict[str, Any], trigger: str) -> InvoiceVerdicts:
    """One listed invoice decided under both files on one trigger; held under both when `run.held`
    names it."""
    held, now, facts = run.held, run.now, run.facts
    invoice_id = str(invoice.get("id"))
    currency = str(invoice.get("currency_code") or "").upper()
    amount = invoice.get("amount_due")
    amount = amount if isinstance(amount, int) and not isinstance(amount, bool) else 0
    major = to_major(amount, currency) if currency else Decimal(amount)
    if invoice_id in held:
        old = new_verdict = held_verdict(held[invoice_id])
    else:
        swept = trigger == SWEEP_EVENT_TYPE
        event = sweep_event(invoice, "diff", now) if swept else next_event(invoice, trigger, "diff", now)
        old, new_verdict = verdict(run.base, event, now, facts), verdict(run.new, event, now, facts)
    customer = str(invoice.get("customer_id") or "")
    return InvoiceVerdicts(invoice_id, customer, currency, amount, major, old, new_verdict, trigger)


def diff_listing(base: RuleSet, new: RuleSet, listing: Listing, now: datetime, facts: FactSource) -> RulesDiff:
    """Decide on every listed invoice under both files at `now`, on every trigger of the preview
    plan; apply each file's budgets per trigger (each is the one thing that happens next) in listing
    order from what `listing.budgets` had used, and compare. The rows come invoice by invoice, each
    invoice's triggers in the plan's order."""
    plan = preview_plan(base, new)
    used = listing.budgets.at(now) if listing.budgets is not None else None
    run = DiffRun(base, new, now, facts, listing.held or {})
    per_trigger = []
    for trigger in plan.triggers:
        rows = [invoice_verdicts(run, invoice, trigger) for invoice in listing.invoices]
        rows = apply_budgets(base.limits, rows, "old", used)
        per_trigger.append(apply_budgets(new.limits, rows, "new", used))
    diff = compare([row for rows in zip(*per_trigger, strict=True) for row in rows], plan)
    shown = new.limits if new.limits.max_per_day or new.limits.max_count_per_hour else base.limits
    diff.budgets = budgets_start(listing.budgets, shown, now)
    diff.held = holds_line(listing.held, (str(invoice.get("id")) for invoice in listing.invoices), listing.held_source)
    return diff


def diff_against_chargebee(
    settings: Settings, connection: redis.Redis, base: RuleSet, new: RuleSet, now: datetime
) -> tuple[RulesDiff, Listing]:
    """List every open invoice with a client under the shared rate limit (as the jobs build theirs)
    and compare; for the dashboard, which has no client of its own. Raises ListingFailed."""
    if not settings.api_base:
        raise ListingFailed("no Chargebee configured (CHARGEBEE_SITE or CHARGEBEE_API_BASE)")
    rate_limit = build_rate_limit(settings, connection)
    client = ChargebeeClient(
        settings.api_base, settings.chargebee_api_key, timeout=settings.http_timeout, rate_limit=rate_limit
    )
    listing = Listing(taken_at=now.isoformat(timespec="seconds"), source=settings.api_base)
    try:
        list_open_invoices(client, listing)
        listing.budgets = budgets_used(connection, now, settings.key_prefix)
        listing.held = held_invoices(connection, settings.key_prefix)
        view = settings.site_name or None  # the site's view of both files: a rule limited to others is out
        return diff_listing(base.for_site(view), new.for_site(view), listing, now, FactSource(listing, client)), listing
    except ChargebeeError as exc:
        raise ListingFailed(f"cannot list the open invoices from Chargebee: {exc}") from None


def parse_instant(text: str, name: str = "the time") -> datetime:
    """An ISO time to decide at (without a zone: UTC); ValueError when it is not one, or when it is
    out of range (9999-12-31T23:59:59-14:00 is in the year 10000 in UTC, which no datetime holds)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} {text!r} is not an ISO time (2026-11-26T12:00:00+00:00)") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    try:
        moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"{name} {text!r} is out of range: in UTC it falls outside the years 1 to 9999") from None
    return moment


# -- snapshots -------------------------------------------------------------------------------------


def _same_file(a: Path, b: Path) -> bool:
    """Whether two names are one file: the same path once resolved, or (hard links) the same inode."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except (OSError, RuntimeError):  # a symlink loop: not a file this run read
        return False


def check_snapshot_path(path: str | os.PathLike[str], read: Iterable[str | os.PathLike[str]] = ()) -> None:
    """Refuse, before the listing, a snapshot that could not be written (a directory, no such
    directory, no permission) or that would replace a file this run reads (`read`: the rules files);
    a full disk is only found when writing."""
    target = Path(path)
    for source in read:
        if _same_file(target, Path(source)):
            raise SnapshotError(
                f"cannot write the snapshot to {path}: it is {source}, read by this run; name another file"
            )
    if target.is_dir():
        raise SnapshotError(f"cannot write the snapshot to {path}: it is a directory")
    if not target.parent.is_dir():
        raise SnapshotError(f"cannot write the snapshot to {path}: no directory {target.parent}")
    # written beside it and renamed over it: the directory must take a new file; a file made read-only stays so
    if not os.access(target.parent, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise SnapshotError(f"cannot write the snapshot to {path}: permission denied")


def save_snapshot(path: str | os.PathLike[str], listing: Listing) -> None:
    """Write the listing to `path` (a name ending in .gz: gzipped; 10,000 invoices are ~20 MB of
    JSON, ~1 MB gzipped). It holds customer data, so it is created readable by its owner only
    (0600), as a temporary file beside `path` renamed over it once complete: a crash or a full disk
    leaves the file that was there, never half a snapshot."""
    data = {
        "format": SNAPSHOT_FORMAT,
        "taken_at": listing.taken_at,
        "source": listing.source,
        "invoices": listing.invoices,
        "customers": listing.customers,
        "subscriptions": listing.subscriptions,
        "budgets_used": listing.budgets.as_dict() if listing.budgets is not None else None,
        "held": listing.held,
    }
    target = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)  # 0600
    except OSError as exc:
        raise SnapshotError(f"cannot write the snapshot to {path}: {exc.strerror or exc}") from None
    renamed = False
    try:
        with os.fdopen(handle, "wb") as raw:
            if target.name.endswith(".gz"):
                with gzip.GzipFile(filename=target.name, mode="wb", fileobj=raw) as zipped:
                    _dump(data, zipped)
            else:
                _dump(data, raw)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temporary, target)
        renamed = True
    except OSError as exc:
        raise SnapshotError(f"cannot write the snapshot to {path}: {exc.strerror or exc}") from None
    finally:
        if not renamed:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def _dump(data: dict[str, Any], binary: IO[bytes]) -> None:
    text = io.TextIOWrapper(binary, encoding="utf-8")
    json.dump(data, text, separators=(",", ":"))
    text.flush()
    text.detach()  # the caller closes the file


def _read_bounded(path: str | os.PathLike[str], limit: int) -> bytes:
    """The file's bytes (decompressed for .gz), refused past `limit`: counted in chunks first, so
    a file too big is refused without holding it; then read, at most `limit` + 1 bytes."""
    opener: Any = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as handle:
        size = 0
        while chunk := handle.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise SnapshotError(
                    f"{path} holds more than {limit // (1024 * 1024)} MiB of JSON (decompressed), the most a snapshot"
                    " may (about 100,000 invoices take 200 MB): refused"
                )
    with opener(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:  # grew between the two reads
        raise SnapshotError(f"{path} changed while it was read: refused")
    return data


def load_snapshot(path: str | os.PathLike[str], limit: int | None = None) -> Listing:
    """The listing a snapshot holds (at most `limit` bytes of JSON, default MAX_SNAPSHOT_BYTES);
    anything else is refused in one line that names what is wrong."""
    try:
        data = json.loads(_read_bounded(path, MAX_SNAPSHOT_BYTES if limit is None else limit).decode("utf-8"))
    except OSError as exc:
        raise SnapshotError(f"cannot read {path}: {exc.strerror or exc}") from None
    except RecursionError:
        raise SnapshotError(f"{path} is nested more than {MAX_SNAPSHOT_NESTING} levels deep: refused") from None
    except (ValueError, EOFError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"{path} is not a snapshot (not JSON: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError(f"{path} is not a snapshot written by `reactor rules diff --snapshot`")
    try:
        return _listing_of(data, f"the snapshot {os.path.basename(path)}")
    except ValueError as exc:
        raise SnapshotError(f"{path}: {exc}: refused") from None


def _listing_of(data: dict[str, Any], name: str) -> Listing:
    """The listing in a snapshot's JSON, each field the diff reads checked to be what save_snapshot
    writes; ValueError naming the first that is not. The rest of each invoice, customer and
    subscription is Chargebee's, decided on as a listed one is."""
    for section in data:
        if _nested_deeper(data[section], MAX_SNAPSHOT_NESTING - 1):
            raise ValueError(f"{section!r} nests more than {MAX_SNAPSHOT_NESTING} levels deep")
    invoices = data.get("invoices")
    if not isinstance(invoices, list):
        raise ValueError("invoices must be a list of invoice objects")
    for index, invoice in enumerate(invoices):
        _check_invoice(invoice, f"invoices[{index}]")
    customers = _resources(data.get("customers"), "customers")
    subscriptions = _resources(data.get("subscriptions"), "subscriptions")
    taken_at, source = data.get("taken_at"), data.get("source", "")
    if not isinstance(taken_at, str):
        raise ValueError("taken_at must be the ISO time the listing was taken")
    parse_instant(taken_at, "taken_at")
    if not isinstance(source, str):
        raise ValueError("source must be a string")
    return Listing(
        invoices,
        customers,
        subscriptions,
        taken_at,
        source,
        budgets=BudgetsUsed.from_dict(data.get("budgets_used"), name),
        held=_held(data.get("held")),
        held_source=name,
    )


def _check_invoice(invoice: object, where: str) -> None:
    """The fields the diff reads of a listed invoice (`diff_listing`, reactor/jobs/facts.py)."""
    if not isinstance(invoice, dict):
        raise ValueError(f"{where} must be an invoice object")
    invoice_id = invoice.get("id")
    if not isinstance(invoice_id, str) or not invoice_id:
        raise ValueError(f"{where}.id must be a non-empty string")
    for key in ("customer_id", "subscription_id"):
        if not isinstance(invoice.get(key), (str, type(None))):
            raise ValueError(f"{where}.{key} must be a string or null")
    if not isinstance(invoice.get("currency_code"), str):
        raise ValueError(f"{where}.currency_code must be a string")
    if not is_counter(invoice.get("amount_due")):
        raise ValueError(f"{where}.amount_due must be a whole number of minor units from 0 to {COUNTER_MAX}")


def _resources(value: object, section: str) -> dict[str, dict[str, Any] | None]:
    """The customers or subscriptions fetched, by id: an object each, or null for one Chargebee did not have."""
    if not isinstance(value, dict):
        raise ValueError(f"{section} must be an object of {section} by id")
    for resource_id, resource in value.items():
        if not isinstance(resource, (dict, type(None))):
            raise ValueError(f"{section}[{resource_id!r}] must be an object or null")
    return value


def _nested_deeper(value: object, levels: int) -> bool:
    """Whether `value` holds lists or objects more than `levels` deep (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item  # only lists and objects are stacked
        for child in children:
            if isinstance(child, (dict, list)):
                if depth >= levels:
                    return True
                stack.append((child, depth + 1))
    return False


def _held(data: object) -> dict[str, str] | None:
    """The held list a snapshot kept (invoice id → reason), or None when it kept none (one taken
    before snapshots kept it): unknown. ValueError when it is not such a map."""
    if data is None:
        return None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError("held must be an object of reasons by invoice id")
    return dict(data)
