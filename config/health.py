"""Liveness and readiness probes.

Readiness also reports the gateway, without calling it: `gateways.registry` records the outcome of
every gateway call in the cache, and a last call that got no answer (timeout, 5xx, refused connection,
rate limited: outcome `retryable`) makes the gateway `degraded`. A declined card or a refused request
is the gateway answering, so it stays `ok`. Degraded is reported, never a 503: the service still
takes payments and its workers retry.
"""

import logging
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from kombu import Connection

logger = logging.getLogger(__name__)
CHECK_TIMEOUT_SECONDS = 2
# Written by gateways/registry.py (GATEWAY_HEALTH_CACHE_KEY) after gateway calls; config may not import gateways.
GATEWAY_HEALTH_CACHE_KEY = "gateway:last_call"
DEGRADED_OUTCOMES = frozenset({"retryable"})


def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_cache() -> None:
    cache.set("health:ready", "1", timeout=10)
    if cache.get("health:ready") != "1":
        raise RuntimeError("cache did not return what was stored")


def _check_broker() -> None:
    url = settings.CELERY_BROKER_URL
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return
    if scheme in {"redis", "rediss"}:
        client = redis.Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT_SECONDS, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
        return
    with Connection(url, connect_timeout=CHECK_TIMEOUT_SECONDS) as conn:
        conn.ensure_connection(max_retries=1)


CHECKS = {"database": _check_database, "cache": _check_cache, "broker": _check_broker}


def gateway_state() -> str:
    """`ok`, or `degraded` when the last gateway call (from any process) got no answer; no gateway call here."""
    try:
        last = cache.get(GATEWAY_HEALTH_CACHE_KEY)
    except Exception:  # noqa: BLE001 - the cache check reports the cache; the gateway is then unknown
        return "degraded"
    if isinstance(last, dict) and last.get("outcome") in DEGRADED_OUTCOMES:
        return "degraded"
    return "ok"


def ready(request: HttpRequest) -> JsonResponse:
    """200 when the database, cache and broker answer; else 503 naming what failed. The gateway is only reported."""
    results: dict[str, str] = {}
    failing: list[str] = []
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - a probe reports any failure, it never raises
            logger.warning("Readiness check failed", extra={"component": name, "error": type(exc).__name__})
            results[name] = "unavailable"
            failing.append(name)
        else:
            results[name] = "ok"
    gateway = gateway_state()
    if failing:
        body = {"status": "unavailable", "failing": failing, "checks": results, "gateway": gateway}
        return JsonResponse(body, status=503)
    return JsonResponse({"status": "ok", "checks": results, "gateway": gateway})
