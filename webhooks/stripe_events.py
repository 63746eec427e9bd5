"""Stripe's event list, read with the official SDK (gateway level: no ORM, plain dicts out)."""

from collections.abc import Iterator
from typing import Any

import stripe
from django.conf import settings
from stripe.params import EventListParams

PAGE_SIZE = 100  # Stripe's largest page


def stripe_client() -> stripe.StripeClient:
    """A client on the configured account (`STRIPE_API_BASE` may point at a Stripe-compatible server)."""
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else {},
        max_network_retries=0,  # the periodic task runs again soon; no retries inside one run
        http_client=stripe.RequestsClient(timeout=settings.STRIPE_TIMEOUT_SECONDS),
    )


def list_events(*, created_gte: int, client: stripe.StripeClient | None = None) -> Iterator[dict[str, Any]]:
    """Every event created at or after `created_gte` (Unix seconds), as plain dicts, paging as needed.

    No `types` filter: Stripe-compatible test servers do not know it, and the caller skips the types
    it does not handle. Raises `stripe.StripeError` when Stripe fails.
    """
    params: EventListParams = {"created": {"gte": created_gte}, "limit": PAGE_SIZE}
    for event in (client or stripe_client()).v1.events.list(params).auto_paging_iter():
        yield event.to_dict()
