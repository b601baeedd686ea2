"""`reactor rules diff --fail-over` and the command's exit codes: how much a rules change may newly
write off before a CI job should stop it (the comparison is reactor/rules/diff.py).

Pure, like the rest of the rules core.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from .diff import RulesDiff

_AMOUNT = re.compile(r"[0-9]{1,15}(\.[0-9]{1,4})?")  # major units, ASCII digits: no 1e9999, no NaN


class FailOverError(ValueError):
    """A --fail-over value that cannot be read; the message says how to write it."""


@dataclass(frozen=True)
class FailOver:
    """The most a change may newly write off per currency: a bare amount for every currency, and
    `USD=500` for one. With only per-currency amounts, a currency not named has no allowance."""

    any_currency: Decimal | None = None
    per_currency: Mapping[str, Decimal] = field(default_factory=dict)

    @classmethod
    def parse(cls, values: Iterable[str]) -> FailOver | None:
        """The allowance the --fail-over values give, None when none is given. Each currency, and
        the bare amount, at most once: a second one would silently replace the first."""
        any_currency: Decimal | None = None
        per: dict[str, Decimal] = {}
        given: dict[str, str] = {}  # currency (or "" for every currency) -> the value that set it
        for value in values:
            name, equals, amount = value.rpartition("=")
            if not _AMOUNT.fullmatch(amount.strip()):
                raise FailOverError(
                    f"--fail-over {value!r}: write an amount of at least 0 (500) or CURRENCY=AMOUNT (USD=500)"
                )
            if equals and not name:
                raise FailOverError(
                    f"--fail-over {value!r}: name a currency before '=' (USD=500) or leave '=' out (500)"
                )
            if equals and not (len(name) == 3 and name.isascii() and name.isalpha()):
                raise FailOverError(f"--fail-over {value!r}: {name!r} is not a 3-letter currency code")
            key = name.upper()
            if key in given:
                which = f"for {key}" if key else "without a currency"
                raise FailOverError(
                    f"--fail-over given twice {which} ({given[key]!r} and {value!r}): give each currency once"
                )
            given[key] = value
            number = Decimal(amount.strip())
            if key:
                per[key] = number
            else:
                any_currency = number
        return cls(any_currency, per) if given else None

    def allowance(self, currency: str) -> Decimal:
        return self.per_currency.get(currency, self.any_currency if self.any_currency is not None else Decimal(0))

    def exceeded(self, diff: RulesDiff) -> list[str]:
        """One line per currency whose newly written-off amount passes its allowance: on the sweep or
        on any next event, each invoice counted once (it is written off at most once)."""
        lines = []
        for currency, (count, amount) in sorted(diff.newly_written_off.items()):
            allowed = self.allowance(currency)
            if amount > allowed:
                lines.append(
                    f"{count} newly written off for {amount} {currency}, over --fail-over {allowed} {currency}"
                )
        return lines


EXIT_NO_CHANGE, EXIT_CHANGES, EXIT_ERROR, EXIT_OVER, EXIT_NOT_PREVIEWED = 0, 1, 2, 3, 4
"""Exit codes of `reactor rules diff` (docs/operations.md, "Previewing a rules change")."""


def exit_code(diff: RulesDiff, fail_over: FailOver | None) -> int:
    """0 no change, 1 changes, 3 when --fail-over is passed, 4 when a change could not be previewed
    (2, an error, is the command's). When several hold: 3 (known to write off too much), then 4
    (unknown, never "no change"), then 1."""
    if fail_over is not None and fail_over.exceeded(diff):
        return EXIT_OVER
    if diff.not_previewed:
        return EXIT_NOT_PREVIEWED
    return EXIT_CHANGES if diff.changed else EXIT_NO_CHANGE
