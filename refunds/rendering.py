"""The API's JSON shape of a refund."""

from typing import Any

from config.api.rendering import iso
from refunds.models import Refund


def render_refund(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.public_id,
        "object": "refund",
        "payment": refund.payment.public_id,
        "amount": refund.amount,
        "currency": refund.currency,
        "status": refund.status,
        "reason": refund.reason or None,
        "failure_reason": refund.failure_reason or None,
        "metadata": refund.metadata,
        "created": iso(refund.created_at),
        "updated": iso(refund.updated_at),
    }
