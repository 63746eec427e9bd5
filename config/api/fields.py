"""Strict serializer fields for money APIs."""

import re
from typing import Any

from rest_framework import serializers


class StrictIntegerField(serializers.IntegerField):
    """Only a JSON integer: not `"1000"`, `1000.0`, `"1_000"`, `true` or digits of other scripts."""

    default_error_messages = {"invalid": "must be an integer (a JSON number without a fraction)."}

    def to_internal_value(self, data: Any) -> int:
        if type(data) is not int:
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """Only JSON `true` or `false`."""

    default_error_messages = {"invalid": "must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if type(data) is not bool:
            self.fail("invalid")
        return data


class StrictCharField(serializers.CharField):
    """Only a JSON string (DRF would turn numbers into strings)."""

    default_error_messages = {"invalid": "must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def unsafe_identifier(value: str) -> bool:
    """True for text an id field refuses: a control character (C0, DEL, C1) or surrounding whitespace."""
    return bool(_CONTROL.search(value)) or value != value.strip()


class IdentifierField(StrictCharField):
    """An id-like string (a gateway token, a customer or order id, a currency code), taken exactly as sent.

    DRF would strip surrounding whitespace and so accept `"pm_card_visa\\n"` as `pm_card_visa`; here
    surrounding whitespace and any control character (tab, newline, escape, NUL, DEL, C1) is a 400.
    """

    default_error_messages = {
        **StrictCharField.default_error_messages,
        "unsafe": "must not contain control characters or surrounding whitespace.",
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs["trim_whitespace"] = False
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if unsafe_identifier(value):
            self.fail("unsafe")
        return value
