"""Why a step of a write-off will not go on, as a value the step returns instead of a bare `str`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Refused:
    """A step's refusal; `reason` is what the audit record and the log say."""

    reason: str


@dataclass(frozen=True)
class BudgetRefused(Refused):
    """A budget of rules.yaml `limits` would be passed: the write-off is held (reactor/jobs/held.py)."""


@dataclass(frozen=True)
class CreditsUnreadable(Refused):
    """`apply_credits_first`, and the customer's credits cannot be read: nothing may be written off."""
