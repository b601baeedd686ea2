"""Money: Chargebee minor units to major units, exactly, with zero-decimal currencies kept whole."""

from __future__ import annotations

from decimal import Decimal

import pytest

from reactor.rules import to_major
from reactor.rules.money import ZERO_DECIMAL_CURRENCIES, MoneyThreshold


def test_usd_cents_become_dollars_with_two_decimals() -> None:
    assert str(to_major(1250, "USD")) == "12.50"


def test_jpy_is_already_in_major_units() -> None:
    assert to_major(3000, "JPY") == Decimal(3000)


def test_currency_code_case_does_not_matter_for_conversion() -> None:
    assert to_major(3000, "jpy") == Decimal(3000)


@pytest.mark.parametrize("currency", sorted(ZERO_DECIMAL_CURRENCIES))
def test_every_zero_decimal_currency_is_not_divided(currency: str) -> None:
    assert to_major(7, currency) == 7


def test_three_decimal_currencies_are_divided_by_100_like_chargebee_documents() -> None:
    assert to_major(1234, "KWD") == Decimal("12.34")


def test_negative_amounts_convert() -> None:
    assert to_major(-5, "EUR") == Decimal("-0.05")


def test_result_is_a_decimal_not_a_float() -> None:
    assert isinstance(to_major(1, "USD"), Decimal)


@pytest.mark.parametrize("amount", [12.5, "1250", True, None])
def test_non_integer_amount_is_refused(amount: object) -> None:
    with pytest.raises(TypeError):
        to_major(amount, "USD")  # type: ignore[arg-type]


def test_threshold_map_scales_to_minor_units_per_currency() -> None:
    threshold = MoneyThreshold(per_currency={"USD": Decimal("25"), "JPY": Decimal("3000")})
    assert (threshold.minor_for("USD"), threshold.minor_for("JPY"), threshold.minor_for("EUR")) == (
        2500,
        3000,
        None,
    )


def test_plain_threshold_scales_by_the_currency_asked_for() -> None:
    threshold = MoneyThreshold(any_currency=Decimal("0.5"))
    assert threshold.minor_for("USD") == 50 and threshold.minor_for("JPY") == Decimal("0.5")


def test_threshold_describes_itself_for_ops() -> None:
    threshold = MoneyThreshold(per_currency={"USD": Decimal("500")})
    assert threshold.describe("USD") == "500 USD" and threshold.describe() == "{USD: 500}"
