"""The approvals a write-off carries (`GivenApprovals`) and whose count: plain values shared by the
hold (held.py), the worker's step (approvals.py) and the people's actions (reactor/console/approvals.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

DASHBOARD_ACTOR = "admin:"
"""How the dashboard prefixes the person in an actor (`admin:<user>`)."""


def person(actor: str | None) -> str:
    """The person in an actor as recorded (`admin:alice` from the dashboard, `alice` from the CLI)."""
    text = actor or ""
    return text[len(DASHBOARD_ACTOR) :] if text.startswith(DASHBOARD_ACTOR) else text


def counted_approvers(approvals: Iterable[dict[str, str]], not_counted: Iterable[str]) -> list[str]:
    """The distinct people whose approval counts, in the order they approved: the same person twice
    counts once, and one who released or undid the write-off not at all."""
    excluded = set(not_counted)
    seen: list[str] = []
    for approval in approvals:
        user = approval.get("user", "")
        if user and user not in seen and user not in excluded:
            seen.append(user)
    return seen


def approval_entries(value: object) -> tuple[dict[str, str], ...]:
    """`[{"user": ..., "at": ...}]` as stored, tolerating anything else (skipped)."""
    items = value if isinstance(value, list) else []
    return tuple(
        {"user": a["user"], "at": str(a.get("at") or "")}
        for a in items
        if isinstance(a, dict) and isinstance(a.get("user"), str)
    )


@dataclass(frozen=True)
class GivenApprovals:
    """What a person's last approval hands to the worker with the event (job `release_held`): the
    tier approved, who approved when, and who does not count."""

    tier: int
    approvals: tuple[dict[str, str], ...]
    not_counted: tuple[str, ...] = ()

    @classmethod
    def from_data(cls, data: object) -> GivenApprovals | None:
        if not isinstance(data, dict) or type(data.get("tier")) is not int:
            return None
        not_counted = tuple(u for u in data.get("not_counted") or () if isinstance(u, str))
        return cls(data["tier"], approval_entries(data.get("approvals")), not_counted)

    def as_data(self) -> dict[str, Any]:
        return {"tier": self.tier, "approvals": list(self.approvals), "not_counted": list(self.not_counted)}

    def counted(self) -> list[str]:
        return counted_approvers(self.approvals, self.not_counted)

    def enough_for(self, tier: int, approvers: int) -> bool:
        """Approved for `tier` or a higher one, by at least `approvers` people who count."""
        return self.tier >= tier and len(self.counted()) >= approvers
