"""Money in rules: Chargebee sends minor units, ops write thresholds in major units.

Rules compare in major units, so that `amount_due: {lte: 25}` means 25 dollars, not 25 cents
(`minor_factor`, `MoneyThreshold`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

ZERO_DECIMAL_CURRENCIES: frozenset[str] = frozenset(
    {
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "ISK",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    }
)

MONEY_FIELDS: frozenset[str] = frozenset(
    {
        # invoice (https://apidocs.chargebee.com/docs/api/invoices) and subscription
        "amount_due",
        "total",
        "amount_paid",
        "write_off_amount",
        "amount_adjusted",
        "credits_applied",
        "amount_to_collect",
        "tax",
        "sub_total",
        "round_off_amount",
        "mrr",
        # transaction / credit_note amounts are also "in cents"
        "amount",
        "amount_refunded",
        "amount_unused",
        "amount_available",
        "amount_allocated",
        "amount_capturable",
    }
)
"""Leaf names whose values are integers in minor units and are compared in major units."""


# Chargebee documents every money field as an integer "in cents", except for zero-decimal currencies
# (JPY, KRW, ...) whose values are already in the major unit. Three-decimal currencies (BHD, KWD,
# OMR, JOD, TND, ...) are deliberately NOT special-cased: Chargebee's documentation speaks only of
# "cents", and dividing by 100 yields the *larger* of the two possible major amounts. Write-off
# thresholds and `limits.max_write_off` are upper bounds, so over-stating the amount can only make an
# invoice fail them, never pass them by mistake. (For a lower bound such as `gte` the same reading is
# permissive; rules for these currencies should be bounded above as well, which the write-off
# guardrail always is.)
def minor_factor(currency: str) -> int:
    """How many minor units Chargebee sends per major unit of `currency`."""
    return 1 if currency.upper() in ZERO_DECIMAL_CURRENCIES else 100


def to_major(minor: int, currency: str) -> Decimal:
    """Convert a Chargebee integer amount to a Decimal in major units (1250 USD -> 12.50).

    `scaleb` keeps the exponent, so the result prints with the currency's two decimals and is
    exact; floats are never involved.
    """
    if type(minor) is not int:
        raise TypeError(f"amount must be an integer in minor units, got {type(minor).__name__}")
    if currency.upper() in ZERO_DECIMAL_CURRENCIES:
        return Decimal(minor)
    return Decimal(minor).scaleb(-2)


def _to_minor(major: Decimal, factor: int) -> int | Decimal:
    """Scale a major-unit threshold to minor units; integral results become ints for speed."""
    # Thresholds are compared against the raw integer in minor units (scaled once, at load time), so
    # `decide` does no Decimal division on its hot path and stays exact.
    scaled = major * factor
    return int(scaled) if scaled == scaled.to_integral_value() else scaled


@dataclass(frozen=True)
class MoneyThreshold:
    """A number for any currency, or per-currency numbers; a currency not listed has no value."""

    any_currency: Decimal | None = None
    per_currency: Mapping[str, Decimal] = field(default_factory=dict)
    _minor: dict[str, int | Decimal] = field(default_factory=dict, init=False, repr=False, compare=False)
    _any_minor: tuple[int | Decimal, int | Decimal] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        minor = {cur: _to_minor(v, minor_factor(cur)) for cur, v in self.per_currency.items()}
        object.__setattr__(self, "_minor", minor)
        if self.any_currency is not None:
            pair = (_to_minor(self.any_currency, 100), _to_minor(self.any_currency, 1))
            object.__setattr__(self, "_any_minor", pair)

    def major_for(self, currency: str) -> Decimal | None:
        """The threshold in major units for `currency`, or None when it has none."""
        if self.any_currency is not None:
            return self.any_currency
        return self.per_currency.get(currency)

    def minor_for(self, currency: str) -> int | Decimal | None:
        """The threshold in Chargebee's minor units for `currency`, or None when it has none."""
        if self._any_minor is not None:
            return self._any_minor[1] if currency in ZERO_DECIMAL_CURRENCIES else self._any_minor[0]
        return self._minor.get(currency)

    def describe(self, currency: str | None = None) -> str:
        """Human text: "500 USD" for one currency, "{USD: 25, EUR: 20}" or "25" for all."""
        if currency is not None:
            value = self.major_for(currency)
            return "no value" if value is None else f"{value} {currency}"
        if self.any_currency is not None:
            return str(self.any_currency)
        return "{" + ", ".join(f"{cur}: {v}" for cur, v in self.per_currency.items()) + "}"
