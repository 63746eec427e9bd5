"""Stripe's Dispute object, as a `charge.dispute.*` webhook delivers it, read into the gateway's `DisputeResult`.

The object is read by the Stripe adapter's own parser; the funds events say what they are even when their
object lists no balance transaction (a reinstatement implies the withdrawal before it).
"""

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from gateways.disputes import DisputeResult
from gateways.stripe.parsers import parse_dispute as parse_stripe_dispute

FUNDS_WITHDRAWN = "charge.dispute.funds_withdrawn"
FUNDS_REINSTATED = "charge.dispute.funds_reinstated"


def parse_dispute(data: Mapping[str, Any], *, event_type: str = "") -> DisputeResult:
    result = parse_stripe_dispute(data)
    reinstated = result.funds_reinstated or event_type == FUNDS_REINSTATED
    withdrawn = result.funds_withdrawn or reinstated or event_type == FUNDS_WITHDRAWN
    return replace(result, funds_withdrawn=withdrawn, funds_reinstated=reinstated)
