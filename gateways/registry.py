"""Which gateway serves a payment: the configured one (`PAYMENTS_GATEWAY`) or the one it was made with.

Every gateway handed out here is wrapped once in `InstrumentedGateway`: each call is timed into
`gateway_request_duration_seconds{gateway,operation,outcome}` and its outcome is kept in the cache
(`GATEWAY_HEALTH_CACHE_KEY`; an answer like the last one at most once a second per process), which
`/health/ready` reads instead of calling the gateway.
"""

import logging
import time
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import Any, cast

from django.conf import settings
from django.core.cache import cache
from prometheus_client import Histogram

from gateways.base import ActionRequired, Declined, Gateway, IntentResult, Retryable, SetupIntentResult
from gateways.simulator import SimulatorGateway
from gateways.stripe import StripeGateway

logger = logging.getLogger(__name__)

GATEWAY_DURATION = Histogram(
    "gateway_request_duration_seconds",
    "Calls to the payment gateway, by gateway, operation and outcome "
    "(ok, declined, action_required, retryable, permanent)",
    ["gateway", "operation", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

# The last call's outcome, for the readiness probe; config/health.py reads the same key (neither
# package may import the other). Kept a day: older than that, the probe knows nothing and says ok.
GATEWAY_HEALTH_CACHE_KEY = "gateway:last_call"
GATEWAY_HEALTH_TTL_SECONDS = 86_400

# One answer each: timed. The list_* methods page lazily (the call itself does no request), so they are not.
TIMED_OPERATIONS = frozenset(
    {
        "create_intent",
        "confirm_intent",
        "capture_intent",
        "cancel_intent",
        "retrieve_intent",
        "card_fingerprint",
        "create_refund",
        "retrieve_refund",
        "create_customer",
        "update_customer",
        "retrieve_customer",
        "delete_customer",
        "create_setup_intent",
        "retrieve_setup_intent",
        "attach_payment_method",
        "detach_payment_method",
        "retrieve_payment_method",
        "create_price",
        "create_subscription",
        "update_subscription",
        "cancel_subscription",
        "retrieve_subscription",
        "retrieve_invoice",
        "pay_invoice",
        "mark_invoice_uncollectible",
        "void_invoice",
        "advance_clock",
        "retrieve_dispute",
        "update_dispute",
        "close_dispute",
    }
)


def call_outcome(result: Any = None, error: BaseException | None = None) -> str:
    """The outcome label of one call: what it returned or raised."""
    if error is None:
        waiting = isinstance(result, IntentResult | SetupIntentResult) and result.status == "requires_action"
        return "action_required" if waiting else "ok"
    if isinstance(error, Declined):
        return "declined"
    if isinstance(error, ActionRequired):
        return "action_required"
    if isinstance(error, Retryable):
        return "retryable"
    return "permanent"  # Permanent, or anything untyped (a bug in an adapter): repeating would not help either


# An answer is written for the probe at most once per `GATEWAY_HEALTH_REFRESH_MS` (1 s) per process while this
# process's last record was an answer too: the write was a Redis round trip on every gateway call (as much of a
# refund's worker time as the simulator's own call). A call that got no answer is always written, and so is the
# next answer after it; another process's "no answer" is overwritten by this one's answers within the window.
_answer_written_at: list[float | None] = [None]  # when this process last wrote an answer (monotonic); None: not


def _record(gateway: str, operation: str, outcome: str, seconds: float) -> None:
    GATEWAY_DURATION.labels(gateway=gateway, operation=operation, outcome=outcome).observe(seconds)
    answered, now = outcome != "retryable", time.monotonic()  # config.health's DEGRADED_OUTCOMES
    last = _answer_written_at[0]
    if answered and last is not None and (now - last) * 1000 < settings.GATEWAY_HEALTH_REFRESH_MS:
        return
    state = {"gateway": gateway, "operation": operation, "outcome": outcome, "at": time.time()}
    try:
        cache.set(GATEWAY_HEALTH_CACHE_KEY, state, timeout=GATEWAY_HEALTH_TTL_SECONDS)
    except Exception:  # noqa: BLE001 - the probe's record must never fail a payment
        logger.warning("Could not record the gateway call for the readiness probe", exc_info=True)
        return
    _answer_written_at[0] = now if answered else None


class InstrumentedGateway:
    """A gateway whose calls are timed and whose last outcome is recorded; everything else passes through."""

    def __init__(self, inner: Gateway) -> None:
        self._inner = inner
        self.name = inner.name

    @property
    def inner(self) -> Gateway:
        return self._inner

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._inner, attribute)
        if attribute not in TIMED_OPERATIONS:
            return value
        return _timed(value, gateway=self.name, operation=attribute)

    def __repr__(self) -> str:
        return f"InstrumentedGateway({self._inner!r})"


def _timed(method: Callable[..., Any], *, gateway: str, operation: str) -> Callable[..., Any]:
    @wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = method(*args, **kwargs)
        except Exception as exc:
            _record(gateway, operation, call_outcome(error=exc), time.perf_counter() - started)
            raise
        _record(gateway, operation, call_outcome(result), time.perf_counter() - started)
        return result

    return call


def get_gateway(name: str | None = None) -> Gateway:
    """The configured gateway (`PAYMENTS_GATEWAY`), or the one a payment was made with, instrumented.

    :raises ValueError: the name is not a known gateway.
    """
    name = name or settings.PAYMENTS_GATEWAY
    if name == "stripe":
        return _instrumented_stripe(
            settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE, settings.STRIPE_TIMEOUT_SECONDS
        )
    if name == "simulator":
        return cast(Gateway, InstrumentedGateway(SimulatorGateway()))
    raise ValueError(f"Unknown gateway {name!r}")


def stripe_gateway() -> StripeGateway:
    """The Stripe gateway on the configured account (one client and connection pool per configuration)."""
    return _stripe_gateway(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE, settings.STRIPE_TIMEOUT_SECONDS)


@lru_cache(maxsize=4)
def _stripe_gateway(api_key: str, api_base: str, timeout: float) -> StripeGateway:
    return StripeGateway(api_key=api_key, api_base=api_base, timeout=timeout)


@lru_cache(maxsize=4)
def _instrumented_stripe(api_key: str, api_base: str, timeout: float) -> Gateway:
    return cast(Gateway, InstrumentedGateway(_stripe_gateway(api_key, api_base, timeout)))
