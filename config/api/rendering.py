"""Conventions every rendered object follows: timestamps in UTC ISO 8601 with milliseconds and a Z."""

from datetime import datetime


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S") + (f".{value.microsecond // 1000:03d}Z" if value.microsecond else "Z")
