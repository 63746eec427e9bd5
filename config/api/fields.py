"""Strict serializer fields for money APIs."""

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
