"""Currencies and money formatting: minor units in, people's notation out, and back again exactly."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payments.money import (
    CURRENCIES,
    MAX_AMOUNT,
    UnknownCurrency,
    format_amount,
    format_decimal,
    get_currency,
    is_supported,
    parse_major,
)


# --- format_amount --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (1999, "usd", "$19.99"),
        (2000, "usd", "$20.00"),
        (5, "usd", "$0.05"),
        (0, "usd", "$0.00"),
        (500, "jpy", "¥500"),
        (0, "jpy", "¥0"),
        (1500, "kwd", "1.500 KD"),
        (5, "kwd", "0.005 KD"),
        (1999, "eur", "€19.99"),
        (1999, "chf", "CHF 19.99"),
        (1999, "sek", "19.99 kr"),
        (1000, "krw", "₩1,000"),
        (1234, "bhd", "1.234 BD"),
    ],
)
def test_format_amount_uses_the_currency_exponent_and_symbol(amount, currency, expected):
    assert format_amount(amount, currency) == expected


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (-1999, "usd", "-$19.99"),
        (-5, "usd", "-$0.05"),
        (-500, "jpy", "-¥500"),
        (-1500, "kwd", "-1.500 KD"),
        (-1999, "sek", "-19.99 kr"),
        (-123456789, "usd", "-$1,234,567.89"),
    ],
)
def test_format_amount_puts_the_minus_sign_first(amount, currency, expected):
    assert format_amount(amount, currency) == expected


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (99_999_999, "usd", "$999,999.99"),
        (123_456_789_012, "usd", "$1,234,567,890.12"),
        (99_999_999, "jpy", "¥99,999,999"),
        (1_000, "jpy", "¥1,000"),
        (999, "jpy", "¥999"),
        (99_999_990, "kwd", "99,999.990 KD"),
        (100_000, "usd", "$1,000.00"),
    ],
)
def test_format_amount_groups_thousands(amount, currency, expected):
    assert format_amount(amount, currency) == expected


def test_format_amount_accepts_the_code_in_any_case():
    assert format_amount(1999, "USD") == "$19.99"


def test_format_amount_of_an_unknown_currency_is_refused():
    with pytest.raises(UnknownCurrency):
        format_amount(100, "xyz")


# --- format_decimal -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (1999, "usd", "19.99"),
        (1, "usd", "0.01"),
        (0, "usd", "0.00"),
        (123_456_789, "usd", "1,234,567.89"),
        (500, "jpy", "500"),
        (1_234_567, "jpy", "1,234,567"),
        (1500, "kwd", "1.500"),
        (1, "kwd", "0.001"),
        (-1500, "kwd", "-1.500"),
        (-7, "jpy", "-7"),
    ],
)
def test_format_decimal_renders_major_units_without_symbol(amount, currency, expected):
    assert format_decimal(amount, currency) == expected


# --- parse_major ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "currency", "expected"),
    [
        ("19.99", "usd", 1999),
        ("19.9", "usd", 1990),
        ("19", "usd", 1900),
        ("0.05", "usd", 5),
        (" 19.99 ", "usd", 1999),
        ("1,234,567.89", "usd", 123_456_789),
        ("500", "jpy", 500),
        ("1,000", "jpy", 1000),
        ("1.500", "kwd", 1500),
        ("1.5", "kwd", 1500),
        ("0.001", "kwd", 1),
        ("19.99", "USD", 1999),
    ],
)
def test_parse_major_converts_to_minor_units(text, currency, expected):
    assert parse_major(text, currency) == expected


@pytest.mark.parametrize(
    ("text", "currency"),
    [("19.999", "usd"), ("0.001", "usd"), ("500.5", "jpy"), ("500.0", "jpy"), ("1.5000", "kwd")],
)
def test_parse_major_rejects_more_decimals_than_the_currency_has(text, currency):
    with pytest.raises(ValueError, match="decimal places"):
        parse_major(text, currency)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        ".",
        "abc",
        "19.99 USD",
        "$19.99",
        "1.2.3",
        "-5",
        "+5",
        "1e3",
        "1_000",
        "１９.９９",
        "١٩",
        "²",
        "19. 99",
    ],
)
def test_parse_major_rejects_junk(text):
    with pytest.raises(ValueError, match="is not an amount"):
        parse_major(text, "usd")


@pytest.mark.parametrize("text", ["19,99", "1,2,3", ",5", "1,0000.00"])
def test_parse_major_rejects_misplaced_thousands_separators(text):
    # "19,99" is 19.99 in much of Europe: reading it as 1999.00 would charge a hundred times too much.
    with pytest.raises(ValueError, match="is not an amount"):
        parse_major(text, "usd")


def test_parse_major_of_an_unknown_currency_is_refused():
    with pytest.raises(UnknownCurrency):
        parse_major("1.00", "xyz")


@given(currency=st.sampled_from(sorted(CURRENCIES)), amount=st.integers(min_value=0, max_value=MAX_AMOUNT))
def test_parse_major_reverses_format_decimal(currency, amount):
    assert parse_major(format_decimal(amount, currency), currency) == amount


# --- currencies -----------------------------------------------------------------------------------
@pytest.mark.parametrize("code", ["usd", "USD", "Usd", "uSD"])
def test_get_currency_ignores_case(code):
    currency = get_currency(code)

    assert (currency.code, currency.exponent, currency.symbol) == ("usd", 2, "$")


@pytest.mark.parametrize(
    ("code", "exponent", "step"),
    [("usd", 2, 1), ("jpy", 0, 1), ("krw", 0, 1), ("kwd", 3, 10), ("bhd", 3, 10), ("tnd", 3, 10)],
)
def test_get_currency_knows_exponent_and_step(code, exponent, step):
    currency = get_currency(code)

    assert (currency.exponent, currency.step) == (exponent, step)


@pytest.mark.parametrize("code", ["xyz", "", "us", "usdd", "US D"])
def test_get_currency_of_an_unknown_code_raises_unknown_currency(code):
    with pytest.raises(UnknownCurrency):
        get_currency(code)


def test_get_currency_of_a_non_string_raises_unknown_currency():
    with pytest.raises(UnknownCurrency):
        get_currency(None)


def test_unknown_currency_is_a_value_error():
    assert issubclass(UnknownCurrency, ValueError)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("usd", True),
        ("USD", True),
        ("jpy", True),
        ("kwd", True),
        ("irr", False),
        ("KPW", False),
        ("xau", False),
        ("xyz", False),
        ("", False),
        (None, False),
        (840, False),
    ],
)
def test_is_supported(code, expected):
    assert is_supported(code) is expected


def test_every_currency_is_keyed_by_its_lowercase_code_and_has_a_known_exponent():
    for code, currency in CURRENCIES.items():
        assert code == currency.code == code.lower()
        assert len(code) == 3
        assert currency.exponent in {0, 2, 3}
