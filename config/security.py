"""The one card-number detector (request bodies, headers, query strings, logs) and the masking of secrets.

A card number (PAN) is recognised as `docs/api.md` "Conventions" says, on NFKC-normalised text in which
the digits of every script count as ASCII digits:

1. a *group* is a run of digit blocks joined by separators — any mix of whitespace (spaces, tabs, no-break
   spaces), dots, slashes, backslashes, underscores and dashes, one or several (`4111  1111\t1111.1111`);
2. a *candidate* is one or more consecutive whole blocks of a group (never part of a block: the digits
   right before and after a card number are not digits), so `4111 1111 1111 1111 12/26` holds the PAN;
3. a candidate is card data when it starts in a brand's IIN range, has one of that brand's lengths
   (`BRANDS`) and passes Luhn.

So what is not a card number is accepted: a dated id (`INV-2026-11-22-000007`: 14 digits from 2026, no
brand's range), a phone number (E.164: at most 15 digits, so mostly too short), a timestamp, an amount.
Four notations are taken for what they are before looking: digits right after a `+` are a phone number
(`+49 1512 3456795`: 13 digits from 4 that pass Luhn); a decimal number (`0.05674327799897583`: digits,
one dot, digits) is only looked at for its integer part; UUIDs and hex ids (trace ids, hashes: 16-64 hex
digits with a letter) are skipped; a 13-digit Visa candidate that is also a valid GTIN-13 (EAN) is a
product code (Visa has not issued 13-digit cards for decades; an EAN passes Luhn one time in ten). Text
that is percent-encoded is looked at decoded too (and with `+` as a space in a URL or a form body).
"""

import re
import unicodedata
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus

MASK = "[REDACTED]"
CARD_MASK = "[CARD]"
CARD_DATA_MESSAGE = "Card numbers must never be sent to this API; use a gateway payment method token."


@dataclass(frozen=True)
class Brand:
    name: str
    ranges: tuple[tuple[str, str], ...]  # IIN prefix ranges, inclusive, each bound of the same length
    lengths: frozenset[int]


# The IIN ranges and lengths of the brands in docs/api.md "Conventions" (from the brands' published
# ranges, as collected in Wikipedia's "Payment card number" table, ISO/IEC 7812).
BRANDS: tuple[Brand, ...] = (
    Brand("Visa", (("4", "4"),), frozenset({13, 16, 19})),
    Brand("Mastercard", (("51", "55"), ("2221", "2720")), frozenset({16})),
    Brand("American Express", (("34", "34"), ("37", "37")), frozenset({15})),
    Brand("Discover", (("6011", "6011"), ("644", "649"), ("65", "65")), frozenset(range(16, 20))),
    Brand("JCB", (("3528", "3589"),), frozenset(range(16, 20))),
    Brand("Diners Club", (("300", "305"), ("36", "36"), ("38", "39")), frozenset(range(14, 20))),
    Brand("UnionPay", (("62", "62"),), frozenset(range(16, 20))),
)
_MIN_LENGTH = min(min(brand.lengths) for brand in BRANDS)  # 13
_MAX_LENGTH = max(max(brand.lengths) for brand in BRANDS)  # 19
_FIRST_DIGITS = frozenset(low[0] for brand in BRANDS for low, _high in brand.ranges)  # 2 to 6

_SEP = r"[\s._/\\\-\u2010-\u2015\u2212]"  # after NFKC: no-break and other spaces are spaces, full-width marks ASCII
# A run of at least 13 digits and separators from a digit: where a group with 13 digits may be (one scan).
_LONG_GROUP = re.compile(rf"[0-9][0-9{_SEP[1:-1]}]{{{_MIN_LENGTH - 1},}}")
_BLOCK = re.compile(r"[0-9]+")
_HEX = "[0-9a-fA-F]"
_HEX_LETTERS = frozenset("abcdefABCDEF")
_NOT_CARD_TOKENS = re.compile(
    rf"\b(?:{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"  # a UUID
    rf"|(?=[0-9]*[a-fA-F])(?:{_HEX}{{8}}){{2,8}})\b"  # a hex id with a letter: trace id, hash
)
_OTHER_SCRIPT_DIGIT = re.compile(r"(?![0-9])\d")

_STRIPE_SECRET = re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]+|\bwhsec_[A-Za-z0-9+/=]+")
_AUTHORIZATION = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(?:(bearer|basic|token)\s+)?[^\s'\",}]+")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")


_LUHN_DOUBLED = str.maketrans("0123456789", "0246813579")  # a digit doubled, its digits added up


def luhn_valid(digits: str) -> bool:
    """Return True when the ASCII digit string passes the Luhn checksum."""
    doubled = digits[-2::-2].translate(_LUHN_DOUBLED)
    return (sum(digits[-1::-2].encode()) + sum(doubled.encode()) - 48 * len(digits)) % 10 == 0


def gtin_valid(digits: str) -> bool:
    """Return True when the digit string has a valid GTIN (EAN/UPC) check digit (weights 1, 3 from the right)."""
    return sum((ord(char) - 48) * (3 if index % 2 else 1) for index, char in enumerate(reversed(digits))) % 10 == 0


def _brands_by_prefix() -> dict[str, Brand]:
    """Every 4-digit prefix (1000-9999) that lies in a brand's IIN range, to its brand."""
    table: dict[str, Brand] = {}
    for brand in BRANDS:
        for low, high in brand.ranges:
            pad = 4 - len(low)
            for prefix in range(int(low) * 10**pad, (int(high) + 1) * 10**pad):
                table[str(prefix)] = brand
    return table


_BRAND_BY_PREFIX = _brands_by_prefix()


def card_brand(digits: str) -> str | None:
    """The brand whose IIN range and length `digits` (ASCII) has, when it also passes Luhn; else None."""
    brand = _BRAND_BY_PREFIX.get(digits[:4])
    if brand is None or len(digits) not in brand.lengths or not luhn_valid(digits):
        return None
    if len(digits) == 13 and gtin_valid(digits):  # a product code (EAN-13), not a 13-digit Visa
        return None
    return brand.name


def normalise(text: str) -> str:
    """NFKC, then the digits of every script as ASCII digits (a no-op for ASCII text)."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKC", text)
    if text.isascii():
        return text
    return _OTHER_SCRIPT_DIGIT.sub(lambda match: str(unicodedata.decimal(match.group())), text)


def _candidate_runs(text: str, start: int, end: int) -> list[list[tuple[int, int]]]:
    """The digit blocks of the group text[start:end], in runs that a card number may span.

    A decimal number's fraction is dropped; so are blocks inside a UUID or a hex id, which also end a run
    (looked for only near a group that touches a hex letter: searching every text would cost more than the rest).
    """
    blocks = [(match.start(), match.end()) for match in _BLOCK.finditer(text, start, end)]
    if sum(block_end - block_start for block_start, block_end in blocks) < _MIN_LENGTH:
        return []
    end = blocks[-1][1]
    if len(blocks) == 2 and text[blocks[0][1] : blocks[1][0]] == ".":  # a decimal number: its integer part
        return [blocks[:1]]
    if not ((start and text[start - 1] in _HEX_LETTERS) or (end < len(text) and text[end] in _HEX_LETTERS)):
        return [blocks]
    window = _NOT_CARD_TOKENS.finditer(text, max(0, start - 64), min(len(text), end + 64))
    skipped = [(match.start(), match.end()) for match in window]
    if not skipped:
        return [blocks]
    runs: list[list[tuple[int, int]]] = [[]]
    for block in blocks:
        if any(low <= block[0] < high for low, high in skipped):
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(block)
    return runs


def _card_spans(text: str, first_only: bool = False) -> list[tuple[int, int]]:
    """Spans of the card numbers in normalised `text` (ASCII digits), in order, not overlapping."""
    if len(text) < _MIN_LENGTH:
        return []
    spans: list[tuple[int, int]] = []
    for group in _LONG_GROUP.finditer(text):
        if group.start() and text[group.start() - 1] == "+":  # a phone number in E.164 notation (+49 1512 …)
            continue
        for blocks in _candidate_runs(text, group.start(), group.end()):
            covered = 0
            for index, (start, _end) in enumerate(blocks):
                if start < covered or text[start] not in _FIRST_DIGITS:
                    continue
                digits, found = "", 0
                for block_start, block_end in blocks[index:]:
                    digits += text[block_start:block_end]
                    if len(digits) > _MAX_LENGTH:
                        break
                    if len(digits) >= _MIN_LENGTH and card_brand(digits):
                        if first_only:
                            return [(start, block_end)]
                        found = block_end  # the longest card number starting here
                if found:
                    spans.append((start, found))
                    covered = found
    return spans


def _decoded(text: str, url: bool) -> str | None:
    """`text` percent-decoded (and `+` as a space in a URL: a query string, a form body), when that changes it."""
    if "%" not in text and not (url and "+" in text):
        return None
    decoded = unquote_plus(text) if url else unquote(text)
    return decoded if decoded != text else None


def contains_card_number(text: Any, *, url: bool = False) -> bool:
    """Return True when `text` holds a card number in any notation (see the module docstring).

    `url`: `text` is (part of) a URL or a form body, so a `+` in it may stand for a space.
    """
    if not isinstance(text, str) or len(text) < _MIN_LENGTH:
        return False
    if _card_spans(normalise(text), first_only=True):
        return True
    decoded = _decoded(text, url)
    return decoded is not None and bool(_card_spans(normalise(decoded), first_only=True))


def _masked(text: str) -> str | None:
    normalised = normalise(text)
    spans = _card_spans(normalised)
    if not spans:
        return None
    for start, end in reversed(spans):
        normalised = normalised[:start] + CARD_MASK + normalised[end:]
    return normalised


def mask_card_numbers(text: str, *, url: bool = False) -> str:
    """`text` with every card number replaced by `[CARD]` (text holding one is returned NFKC-normalised)."""
    if len(text) < _MIN_LENGTH:
        return text
    text = _masked(text) or text
    decoded = _decoded(text, url)
    if decoded is not None:
        text = _masked(decoded) or text  # an encoded card number: the line is kept decoded, masked
    return text


def find_card_data(value: Any, path: str = "") -> str | None:
    """The parameter path (`metadata[note]`, or `body`) of the first string, number or key holding a card number."""
    if isinstance(value, str):
        return path or "body" if contains_card_number(value) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return path or "body" if contains_card_number(str(value)) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and contains_card_number(key):
                return path or "body"
            found = find_card_data(item, f"{path}[{key}]" if path else str(key))
            if found:
                return found
    if isinstance(value, list):
        for item in value:
            found = find_card_data(item, path)
            if found:
                return found
    return None


def mask_sensitive(text: str, *, url: bool = False) -> str:
    """Mask card numbers, Stripe secrets and Authorization values in free text (`url`: see contains_card_number)."""
    if not text:
        return text
    text = mask_card_numbers(text, url=url)
    if "_" in text:
        text = _STRIPE_SECRET.sub(MASK, text)
    lowered = text.lower()
    if "authorization" in lowered:
        text = _AUTHORIZATION.sub(lambda m: m.group(1) + MASK, text)
    if "bearer" in lowered:
        text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return text
