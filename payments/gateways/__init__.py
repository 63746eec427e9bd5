"""Payment gateways behind one protocol: Stripe (official SDK) and an offline simulator."""

from django.conf import settings

from payments.gateways.base import Gateway


def get_gateway(name: str | None = None) -> Gateway:
    """The configured gateway (`PAYMENTS_GATEWAY`), or the one a payment was made with."""
    name = name or settings.PAYMENTS_GATEWAY
    if name == "stripe":
        from payments.gateways.stripe import StripeGateway

        return StripeGateway.from_settings()
    if name == "simulator":
        from payments.gateways.simulator import SimulatorGateway

        return SimulatorGateway()
    raise ValueError(f"Unknown gateway {name!r}")
