"""Which gateway serves a payment: the configured one (`PAYMENTS_GATEWAY`) or the one it was made with."""

from functools import lru_cache

from django.conf import settings

from gateways.base import Gateway
from gateways.simulator import SimulatorGateway
from gateways.stripe import StripeGateway


def get_gateway(name: str | None = None) -> Gateway:
    """The configured gateway (`PAYMENTS_GATEWAY`), or the one a payment was made with.

    :raises ValueError: the name is not a known gateway.
    """
    name = name or settings.PAYMENTS_GATEWAY
    if name == "stripe":
        return stripe_gateway()
    if name == "simulator":
        return SimulatorGateway()
    raise ValueError(f"Unknown gateway {name!r}")


def stripe_gateway() -> StripeGateway:
    """The Stripe gateway on the configured account (one client and connection pool per configuration)."""
    return _stripe_gateway(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE, settings.STRIPE_TIMEOUT_SECONDS)


@lru_cache(maxsize=4)
def _stripe_gateway(api_key: str, api_base: str, timeout: float) -> StripeGateway:
    return StripeGateway(api_key=api_key, api_base=api_base, timeout=timeout)
