"""Detection and masking of card numbers and secrets, shared by input validation and logging."""

import re

# 13-19 digits, optionally separated by single spaces or dashes ("4242 4242-4242 4242").
_DIGIT_RUN = re.compile(r"(?<![\d])\d(?:[ -]?\d){12,18}(?![\d])")
# A longer run of digits and separators, to find card numbers inside e.g. "ref 4242424242424242 x".
_CANDIDATE = re.compile(r"\d[\d -]{11,}\d")
_STRIPE_SECRET = re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]+|\bwhsec_[A-Za-z0-9+/=]+")
_AUTHORIZATION = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(?:(bearer|basic|token)\s+)?[^\s'\",}]+")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")

MASK = "[REDACTED]"
CARD_MASK = "[CARD]"


def luhn_valid(digits: str) -> bool:
    """Return True when the digit string passes the Luhn checksum."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for candidate in _CANDIDATE.finditer(text):
        chunk = candidate.group()
        for match in _DIGIT_RUN.finditer(chunk):
            digits = re.sub(r"[ -]", "", match.group())
            if 13 <= len(digits) <= 19 and luhn_valid(digits):
                spans.append((candidate.start() + match.start(), candidate.start() + match.end()))
    return spans


def contains_card_number(text: str) -> bool:
    """Return True when `text` holds a card-number-like value (13-19 digits passing Luhn)."""
    if not isinstance(text, str) or sum(ch.isdigit() for ch in text) < 13:
        return False
    return bool(_card_spans(text))


def mask_card_numbers(text: str) -> str:
    spans = _card_spans(text)
    for start, end in reversed(spans):
        text = text[:start] + CARD_MASK + text[end:]
    return text


def mask_sensitive(text: str) -> str:
    """Mask card numbers, Stripe secrets and Authorization values in free text."""
    if not text:
        return text
    if sum(ch.isdigit() for ch in text) >= 13:
        text = mask_card_numbers(text)
    if "_" in text:
        text = _STRIPE_SECRET.sub(MASK, text)
    lowered = text.lower()
    if "authorization" in lowered:
        text = _AUTHORIZATION.sub(lambda m: m.group(1) + MASK, text)
    if "bearer" in lowered:
        text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return text
