"""Rate-limit counting: django-ratelimit's fixed windows and keys, one Redis round trip, failing open.

The DRF throttles of `config.api.throttling` call `rate_check` once per request. The rate syntax
(`N/s`, `N/m`, `N/h`, `N/d`, `N/5m`...), the cache key and the window are django-ratelimit's, but
the counting is not `is_ratelimited`: on Django's RedisCache that costs three commands in three
round trips per request (`SET NX`, then `EXISTS` and `INCR` inside `cache.incr`). Here one Lua
script (`EVALSHA`: `INCR`, and `EXPIRE` on the window's first hit) counts atomically in one round
trip. Other cache backends (LocMemCache when `REDIS_URL` is unset) use `cache.add` / `cache.incr`.

Windows are fixed, as in django-ratelimit: `period` seconds long, shifted per key by
`crc32(key) % period` so that not every client resets at the same second. A burst may use the
whole window's allowance at once. `Retry-After` is the whole seconds until the current window
ends (1 to `period`), not always the full period.

Decision: a payment service must keep taking checkouts when Redis blips, so a cache error lets
the request through, logs a warning and counts `ratelimit_cache_errors_total`. Abuse during an
outage is bounded by the outage; lost sales are not.
"""

import hashlib
import logging
import time
import zlib
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django_ratelimit import ALL
from django_ratelimit.core import EXPIRATION_FUDGE, _make_cache_key, _split_rate
from prometheus_client import Counter
from redis.exceptions import NoScriptError, RedisError

logger = logging.getLogger(__name__)

RATELIMIT_CACHE_ERRORS = Counter(
    "ratelimit_cache_errors_total", "Rate-limit checks that failed open because the cache was unreachable", ["group"]
)
RATELIMIT_REJECTIONS = Counter("ratelimit_rejections_total", "Requests refused by a rate limit", ["group"])

# KEYS[1]: the window's counter; ARGV[1]: its time to live. Returns the count including this hit.
_COUNT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""
_COUNT_SCRIPT_SHA = hashlib.sha1(_COUNT_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1


@dataclass(frozen=True)
class Usage:
    count: int  # hits in the current window, this one included
    limit: int
    retry_after: int  # whole seconds until the window ends and the count starts again (1..period)

    @property
    def limited(self) -> bool:
        return self.count > self.limit


def window_end(value: str, period: int, now: int) -> int:
    """The last second of the window holding second `now` (django-ratelimit's `_get_window`).

    The window holds the seconds `end - period + 1` to `end`; a new one starts at `end + 1`.
    """
    if period == 1:
        return now
    end = now - (now % period) + (zlib.crc32(value.encode()) % period)
    return end + period if end < now else end


def _count(cache_key: str, ttl: int) -> int:
    cache = caches[settings.RATELIMIT_USE_CACHE]
    if isinstance(cache, RedisCache):
        key = cache.make_and_validate_key(cache_key)
        # The backend's own redis-py client (and connection pool): `_cache` is RedisCache's client wrapper.
        client = cache._cache.get_client(key, write=True)  # type: ignore[attr-defined]
        try:
            return int(client.evalsha(_COUNT_SCRIPT_SHA, 1, key, ttl))
        except NoScriptError:  # first use on this Redis (or after SCRIPT FLUSH / a restart): EVAL caches it
            return int(client.eval(_COUNT_SCRIPT, 1, key, ttl))
    if cache.add(cache_key, 1, ttl):
        return 1
    try:
        return int(cache.incr(cache_key))
    except ValueError:  # expired between add and incr: this hit opens the window
        cache.set(cache_key, 1, ttl)
        return 1


def rate_usage(*, group: str, value: str, rate: str) -> Usage:
    """Count one hit of `value` (a client or an IP) in `group` at `rate`.

    :raises RedisError, OSError: when the cache is unreachable (`rate_check` fails open).
    """
    limit, period = _split_rate(rate)
    now = int(time.time())
    end = window_end(value, period, now)
    count = _count(_make_cache_key(group, end, rate, value, ALL), period + EXPIRATION_FUDGE)
    return Usage(count=count, limit=limit, retry_after=end - now + 1)


def rate_check(*, group: str, value: str, rate: str) -> int | None:
    """None when the hit is allowed (or the cache is unreachable); else the Retry-After in seconds."""
    try:
        usage = rate_usage(group=group, value=value, rate=rate)
    except (RedisError, OSError):
        RATELIMIT_CACHE_ERRORS.labels(group=group).inc()
        logger.warning("Rate-limit cache unreachable; allowing the request", extra={"ratelimit_group": group})
        return None
    if not usage.limited:
        return None
    RATELIMIT_REJECTIONS.labels(group=group).inc()
    return usage.retry_after
