"""Retry delays for Celery tasks that call the gateway."""

import random


def backoff_seconds(retries: int, *, base: float, cap: float) -> float:
    """Exponential backoff with jitter (between half and all of the doubled delay), capped."""
    ceiling = min(cap, base * 2**retries)
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography
