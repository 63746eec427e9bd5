"""Payment gateways behind one protocol: Stripe (official SDK) and an offline simulator."""

from functools import lru_cache

from django.conf import settings

from payments.gateways.base import Gateway


def get_gateway(name: str | None = None) -> Gateway:
    """The configured gateway (`PAYMENTS_GATEWAY`), or the one a payment was made with."""
    name = name or settings.PAYMENTS_GATEWAY
    if name == "stripe":
        return _stripe_gateway(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE, settings.STRIPE_TIMEOUT_SECONDS)
    if name == "simulator":
        from payments.gateways.simulator import SimulatorGateway

        return SimulatorGateway()
    raise ValueError(f"Unknown gateway {name!r}")


@lru_cache(maxsize=4)
def _stripe_gateway(api_key: str, api_base: str, timeout: float) -> Gateway:
    """One Stripe client (and its connection pool) per process and configuration."""
    from payments.gateways.stripe import StripeGateway

    return StripeGateway(api_key=api_key, api_base=api_base, timeout=timeout)
