"""Currencies and money formatting: one table, one helper, used by the API docs, the admin and logs.

Amounts are integers in the currency's minor unit. `exponent` is the number of decimal places:
0 for zero-decimal currencies (jpy 500 is ¥500), 2 for most (usd 1999 is $19.99), 3 for the
three-decimal ones (kwd 1500 is 1.500 KD, and Stripe wants multiples of 10 for them).
"""

import re
from dataclasses import dataclass

MAX_AMOUNT = 99_999_999
# "1234.56" or "1,234.56" (commas only as thousands separators), ASCII digits only.
_MAJOR_AMOUNT = re.compile(r"^(?:\d+|\d{1,3}(?:,\d{3})+)(?:\.\d+)?$|^\.\d+$", re.ASCII)


@dataclass(frozen=True)
class Currency:
    code: str
    exponent: int
    symbol: str
    symbol_after: bool = False  # "1.500 KD" rather than "KD1.500"
    minimum: int | None = None  # Stripe's minimum charge amount in minor units, where it has one
    supported: bool = True

    @property
    def step(self) -> int:
        """Amounts must be multiples of this (three-decimal currencies: 10, as Stripe requires)."""
        return 10 if self.exponent == 3 else 1


def _c(code: str, exponent: int, symbol: str, minimum: int | None = None, **kwargs: bool) -> Currency:
    return Currency(code=code, exponent=exponent, symbol=symbol, minimum=minimum, **kwargs)


CURRENCIES: dict[str, Currency] = {
    currency.code: currency
    for currency in (
        # two-decimal
        _c("usd", 2, "$", 50),
        _c("eur", 2, "€", 50),
        _c("gbp", 2, "£", 30),
        _c("cad", 2, "CA$", 50),
        _c("aud", 2, "A$", 50),
        _c("nzd", 2, "NZ$", 50),
        _c("chf", 2, "CHF ", 50),
        _c("sek", 2, " kr", 300, symbol_after=True),
        _c("nok", 2, " kr", 300, symbol_after=True),
        _c("dkk", 2, " kr.", 250, symbol_after=True),
        _c("pln", 2, " zł", 200, symbol_after=True),
        _c("czk", 2, " Kč", 1500, symbol_after=True),
        _c("huf", 2, " Ft", 17500, symbol_after=True),
        _c("ron", 2, " lei", 200, symbol_after=True),
        _c("bgn", 2, " лв", 100, symbol_after=True),
        _c("hkd", 2, "HK$", 400),
        _c("sgd", 2, "S$", 50),
        _c("mxn", 2, "MX$", 1000),
        _c("brl", 2, "R$", 50),
        _c("inr", 2, "₹", 50),
        _c("aed", 2, " AED", 200, symbol_after=True),
        _c("myr", 2, "RM", 200),
        _c("thb", 2, "฿", 1000),
        # zero-decimal
        _c("jpy", 0, "¥", 50),
        _c("krw", 0, "₩", 100),
        _c("clp", 0, "CLP$"),
        _c("vnd", 0, "₫", symbol_after=True),
        _c("xof", 0, " CFA", symbol_after=True),
        _c("xaf", 0, " FCFA", symbol_after=True),
        _c("pyg", 0, "₲"),
        _c("ugx", 0, " USh", symbol_after=True),
        _c("isk", 0, " kr", symbol_after=True),
        # three-decimal
        _c("kwd", 3, " KD", symbol_after=True),
        _c("bhd", 3, " BD", symbol_after=True),
        _c("jod", 3, " JD", symbol_after=True),
        _c("omr", 3, " OMR", symbol_after=True),
        _c("tnd", 3, " DT", symbol_after=True),
        # known ISO 4217 codes that we do not take
        _c("irr", 2, " IRR", symbol_after=True, supported=False),
        _c("kpw", 2, " KPW", symbol_after=True, supported=False),
        _c("syp", 2, " SYP", symbol_after=True, supported=False),
        _c("cup", 2, " CUP", symbol_after=True, supported=False),
        _c("xau", 0, " XAU", symbol_after=True, supported=False),
    )
}


class UnknownCurrency(ValueError):
    pass


def get_currency(code: str) -> Currency:
    """Look up a currency by code, in any case.

    :raises UnknownCurrency: when the code is not in the table.
    """
    try:
        return CURRENCIES[code.lower()]
    except (KeyError, AttributeError):
        raise UnknownCurrency(code) from None


def is_supported(code: str) -> bool:
    currency = CURRENCIES.get(code.lower()) if isinstance(code, str) else None
    return bool(currency and currency.supported)


def format_decimal(amount: int, currency_code: str) -> str:
    """`1999, "usd"` -> `"19.99"`; `500, "jpy"` -> `"500"`; `1500, "kwd"` -> `"1.500"`. Integer arithmetic only."""
    exponent = get_currency(currency_code).exponent
    sign = "-" if amount < 0 else ""
    units, minor = divmod(abs(amount), 10**exponent)
    whole = f"{units:,}"
    return f"{sign}{whole}.{minor:0{exponent}d}" if exponent else f"{sign}{whole}"


def format_amount(amount: int, currency_code: str) -> str:
    """Render an amount for people: `$19.99`, `¥500`, `1.500 KD`."""
    currency = get_currency(currency_code)
    number = format_decimal(amount, currency.code)
    if currency.symbol_after:
        return f"{number}{currency.symbol}"
    if number.startswith("-"):
        return f"-{currency.symbol}{number[1:]}"
    return f"{currency.symbol}{number}"


def parse_major(value: str, currency_code: str) -> int:
    """Convert an amount typed in major units (`"19.99"`) to minor units (1999), exactly, once.

    :raises ValueError: on a malformed value or more decimals than the currency has.
    """
    exponent = get_currency(currency_code).exponent
    text = value.strip()
    if not _MAJOR_AMOUNT.match(text):
        raise ValueError(f"{value!r} is not an amount")
    text = text.replace(",", "")
    whole, _, fraction = text.partition(".")
    if len(fraction) > exponent:
        raise ValueError(f"{currency_code.upper()} has {exponent} decimal places")
    return int(whole or "0") * 10**exponent + int(fraction.ljust(exponent, "0") or "0")
