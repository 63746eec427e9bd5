"""The Stripe gateway (one `StripeClient` of the official SDK) and the public parsers of Stripe objects."""

from gateways.stripe.client import StripeGateway
from gateways.stripe.parsers import parse_intent, parse_refund

__all__ = ["StripeGateway", "parse_intent", "parse_refund"]
