"""The API's rate limits as DRF throttles (counting in `config.api.ratelimit`).

`ClientRateThrottle` is `REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]`, so it runs on every DRF view
under `/api/v1/`, after authentication and permissions: reads (GET, HEAD, OPTIONS) count against
`RATELIMIT_READS`, every other method against `RATELIMIT_WRITES`, per authenticated API client.
Requests without a client never reach it on the API (401 or 403 comes first, without a cache
call). The token endpoints replace it with `TokenRateThrottle`: per IP, `RATELIMIT_TOKEN`.
The Stripe webhook is a plain Django view and is not limited (docs/api.md, "Rate limits").

Over a limit DRF raises `Throttled(wait)`, which the exception handler renders as
`429 rate_limit_error / rate_limited` with `Retry-After` (config/api/errors.py).
"""

from typing import Any

from django.conf import settings
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from config.api.ratelimit import rate_check


class _RateThrottle(BaseThrottle):
    retry_after: int | None = None

    def wait(self) -> float | None:
        return self.retry_after

    def _allow(self, *, group: str, value: str, rate: str) -> bool:
        self.retry_after = rate_check(group=group, value=value, rate=rate)
        return self.retry_after is None


class ClientRateThrottle(_RateThrottle):
    """Reads and writes of one API client, counted apart (groups `api.read`, `api.write`)."""

    def allow_request(self, request: Request, view: Any) -> bool:
        user = request.user
        if not settings.RATELIMIT_ENABLE or not (user and user.is_authenticated):
            return True
        if request.method in SAFE_METHODS:
            return self._allow(group="api.read", value=f"client:{user.pk}", rate=settings.RATELIMIT_READS)
        return self._allow(group="api.write", value=f"client:{user.pk}", rate=settings.RATELIMIT_WRITES)


class TokenRateThrottle(_RateThrottle):
    """Per IP (`REMOTE_ADDR`) at `RATELIMIT_TOKEN`; the group is the view's `throttle_scope`."""

    def allow_request(self, request: Request, view: Any) -> bool:
        if not settings.RATELIMIT_ENABLE:
            return True
        value = f"ip:{request.META.get('REMOTE_ADDR', '')}"
        return self._allow(group=view.throttle_scope, value=value, rate=settings.RATELIMIT_TOKEN)
