"""Payment gateways behind one protocol (`gateways.base.Gateway`): Stripe (official SDK) and an offline simulator.

A plain package: no ORM and no app imports. Apps take plain results and typed errors from it.
"""

from gateways.registry import get_gateway, stripe_gateway

__all__ = ["get_gateway", "stripe_gateway"]
