"""Serializer base classes: unknown fields are rejected, never silently dropped."""

from typing import Any

from rest_framework import serializers


class StrictSerializer(serializers.Serializer):
    """Reject a body that is not a JSON object, or that carries fields this serializer does not know."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": [serializers.ErrorDetail("The body must be a JSON object.", code="invalid")]}
            )
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {unknown[0]: [serializers.ErrorDetail(f"Unknown parameter: {unknown[0]}", code="parameter_invalid")]}
            )
        return super().to_internal_value(data)
