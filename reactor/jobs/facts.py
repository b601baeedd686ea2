"""Fetch the resources rules read that an event does not carry (customer, subscription).

Which ones are worth a call is decided by the pure functions of reactor/rules/facts.py; this
module makes the calls. A resource that cannot be had (Chargebee has no such record, the invoice
names none to fetch, a kind of resource Chargebee cannot be asked for) is returned as unknown with
the reason, so that a decision leaning on it is blocked, never made as if the fact were false.
Errors that a retry may cure (429, 5xx, timeouts) propagate: the job retries.

The worker calls Chargebee afresh for each job. A run that decides on many invoices at once (the
sweep, `reactor rules diff`) asks through `RunFacts`, which fetches each customer and subscription
at most once for that run.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ..chargebee import InvalidIdError, NotFoundError
from ..ingest.envelope import Event
from ..rules import RuleSet
from ..rules.facts import FETCHABLE_ROOTS, missing_roots, needed_roots
from ..rules.fields import Subject


class FactClient(Protocol):
    """What fetching facts calls: a ChargebeeClient, or a RunFacts in front of one."""

    def retrieve_customer(self, customer_id: str) -> dict[str, Any]: ...

    def retrieve_subscription(self, subscription_id: str) -> dict[str, Any]: ...


class RunFacts:
    """A FactClient for one run (a sweep, a rules diff): each customer and subscription is fetched
    at most once, and a 404 is remembered as None (raised again as NotFoundError, so the resource
    stays unknown for every invoice naming it). A failed call (429, 5xx, timeout) is not remembered:
    it propagates as from the client, and the next invoice naming that resource asks again. Build
    one per run; nothing is kept across runs or jobs."""

    def __init__(
        self,
        client: FactClient | None,
        customers: dict[str, dict[str, Any] | None] | None = None,
        subscriptions: dict[str, dict[str, Any] | None] | None = None,
    ) -> None:
        self.client = client
        self.customers: dict[str, dict[str, Any] | None] = {} if customers is None else customers
        self.subscriptions: dict[str, dict[str, Any] | None] = {} if subscriptions is None else subscriptions

    def fetch(self, kind: str, resource_id: str) -> dict[str, Any]:
        """One call to the client for a resource not yet had this run."""
        if self.client is None:
            raise LookupError(f"no Chargebee to ask for {kind} {resource_id}")
        if kind == "customer":
            return self.client.retrieve_customer(resource_id)
        return self.client.retrieve_subscription(resource_id)

    def _get(self, store: dict[str, dict[str, Any] | None], kind: str, resource_id: str) -> dict[str, Any]:
        if resource_id not in store:
            try:
                store[resource_id] = self.fetch(kind, resource_id)
            except NotFoundError:
                store[resource_id] = None
        found = store[resource_id]
        if found is None:
            raise NotFoundError(f"{kind} {resource_id} not found", status=404)
        return found

    def retrieve_customer(self, customer_id: str) -> dict[str, Any]:
        return self._get(self.customers, "customer", customer_id)

    def retrieve_subscription(self, subscription_id: str) -> dict[str, Any]:
        return self._get(self.subscriptions, "subscription", subscription_id)


@dataclass
class Facts:
    """An event completed with what the rules need: `unknown` maps each resource that could not be
    had to why, `fetched` names what was fetched (`customer=cus_1`) for the audit."""

    event: Event
    unknown: dict[str, str] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)

    def note(self) -> str | None:
        """One line for an audit record's detail, or None when nothing was fetched or missing."""
        parts = [f"fetched {', '.join(self.fetched)}"] if self.fetched else []
        parts += [f"{root} unknown: {why}" for root, why in sorted(self.unknown.items())]
        return "; ".join(parts) or None


def complete_facts(
    client: FactClient,
    ruleset: RuleSet,
    event: Event,
    now: datetime,
    before_call: Callable[[], None] = lambda: None,
) -> Facts:
    """Fetch what rules that could lead to a write-off read and the event lacks, and only that.

    Fetching can change which rule decides, and so which resources matter; the loop runs until
    nothing more is needed (at most once per fetchable resource, plus one). `before_call` runs
    before each request (the worker renews its invoice lock there)."""
    facts = Facts(event=event)
    settled: set[str] = set()  # fetched, known not to exist, or unknown
    for _ in range(len(FETCHABLE_ROOTS) + 1):
        missing = missing_roots(ruleset, facts.event.data) - settled
        needed = needed_roots(ruleset, Subject(facts.event.data, now), missing | facts.unknown.keys()) & missing
        if not needed:
            break
        facts.event, unknown, fetched = fetch_facts(client, facts.event, needed, before_call)
        facts.unknown.update(unknown)
        facts.fetched += fetched
        settled |= needed
    for root in missing_roots(ruleset, facts.event.data) - settled:
        facts.unknown[root] = f"the {event.data.get('event_type')} event carries no {root}"
    return facts


def subscription_id_of(invoice: Mapping[str, Any]) -> str | tuple[str, ...] | None:
    """The invoice's subscription id; for a consolidated invoice (no `subscription_id`) the one its
    line items name, or all of them when they name several; None when it has no subscription."""
    value = invoice.get("subscription_id")
    if isinstance(value, str) and value:
        return value
    items = invoice.get("line_items")
    ids = (
        sorted(
            {
                item["subscription_id"]
                for item in items or []
                if isinstance(item, Mapping)
                and isinstance(item.get("subscription_id"), str)
                and item["subscription_id"]
            }
        )
        if isinstance(items, list)
        else []
    )
    if not ids:
        return None
    return ids[0] if len(ids) == 1 else tuple(ids)


def fetch_facts(
    client: FactClient,
    event: Event,
    roots: Iterable[str],
    before_call: Callable[[], None] = lambda: None,
) -> tuple[Event, dict[str, str], list[str]]:
    """A copy of `event` with each of `roots` fetched into its content where it can be.

    Returns (event, unknown, fetched): `unknown` maps a resource that could not be had to why;
    `fetched` lists what was fetched, for the audit. A subscription that does not exist (the
    invoice has none) is neither: its fields read as missing, which is the truth."""
    enriched = copy.deepcopy(event.data)
    content = enriched.setdefault("content", {})
    invoice = content.get("invoice") if isinstance(content.get("invoice"), Mapping) else {}
    unknown: dict[str, str] = {}
    fetched: list[str] = []
    for root in sorted(set(roots)):
        if root not in FETCHABLE_ROOTS:
            unknown[root] = f"a {enriched.get('event_type')} event carries no {root}, and the reactor cannot fetch one"
            continue
        if root == "customer":
            resource_id: Any = invoice.get("customer_id")
            if not isinstance(resource_id, str) or not resource_id:
                unknown[root] = "the invoice names no customer_id"
                continue
        else:
            resource_id = subscription_id_of(invoice)
            if resource_id is None:
                continue  # no subscription: subscription.* is missing because there is none
            if isinstance(resource_id, tuple):
                unknown[root] = f"the invoice spans {len(resource_id)} subscriptions ({', '.join(resource_id)})"
                continue
        before_call()
        try:
            if root == "customer":
                content[root] = client.retrieve_customer(resource_id)
            else:
                content[root] = client.retrieve_subscription(resource_id)
        except NotFoundError:
            unknown[root] = f"Chargebee has no {root} {resource_id} (404)"
            continue
        except InvalidIdError as exc:  # nothing was sent
            unknown[root] = f"Chargebee cannot be asked for it: {exc}"
            continue
        fetched.append(f"{root}={resource_id}")
    return Event.from_data(enriched), unknown, fetched
