"""Rate limits with django-ratelimit, failing open when the rate-limit cache is unreachable.

Decision: a payment service must keep taking checkouts when Redis blips, so a cache error lets
the request through, logs a warning and counts `ratelimit_cache_errors_total`. Abuse during an
outage is bounded by the outage; lost sales are not.
"""

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import _split_rate, is_ratelimited
from prometheus_client import Counter
from redis.exceptions import RedisError

from config.api.errors import RateLimited

logger = logging.getLogger(__name__)

RATELIMIT_CACHE_ERRORS = Counter(
    "ratelimit_cache_errors_total", "Rate-limit checks that failed open because the cache was unreachable", ["group"]
)
RATELIMIT_REJECTIONS = Counter("ratelimit_rejections_total", "Requests refused by a rate limit", ["group"])


def client_key(group: str, request: HttpRequest) -> str:
    """Key per authenticated API client (falls back to the IP for anonymous requests)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"client:{user.pk}"
    return f"ip:{request.META.get('REMOTE_ADDR', '')}"


def ip_key(group: str, request: HttpRequest) -> str:
    return f"ip:{request.META.get('REMOTE_ADDR', '')}"


def enforce_rate_limit(request: HttpRequest, *, group: str, rate_setting: str, key: Callable = client_key) -> None:
    """Raise `RateLimited` (429 with Retry-After) when the request is over the configured rate.

    :raises RateLimited: when over the limit.
    """
    if not settings.RATELIMIT_ENABLE:
        return
    rate = getattr(settings, rate_setting)
    try:
        limited = is_ratelimited(request, group=group, key=key, rate=rate, increment=True)
    except (RedisError, OSError):
        RATELIMIT_CACHE_ERRORS.labels(group=group).inc()
        logger.warning("Rate-limit cache unreachable; allowing the request", extra={"ratelimit_group": group})
        return
    if limited:
        RATELIMIT_REJECTIONS.labels(group=group).inc()
        _count, period = _split_rate(rate)
        raise RateLimited(headers={"Retry-After": str(period)})


def rate_limited(*, group: str, rate_setting: str, key: Callable = client_key) -> Callable:
    """Decorate a view function or a DRF view method (self, request, ...)."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            request = args[1] if len(args) > 1 and hasattr(args[1], "META") else args[0]
            enforce_rate_limit(request, group=group, rate_setting=rate_setting, key=key)
            return view(*args, **kwargs)

        return wrapper

    return decorator
