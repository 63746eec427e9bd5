"""What the gateway's `charge.dispute.*` webhooks mean for our disputes (called by `webhooks.handlers`).

They run inside the webhook's processing transaction: no gateway call here. A dispute is matched to our
payment by its PaymentIntent (payments of invoices too: their payment holds the invoice's intent), else by
its charge (a dispute we hold on the same charge); a dispute of a payment we do not know is not stored.
News is applied once, in any order (see `disputes.services.dispute_apply`).
"""

import logging
from typing import Any

from disputes.models import Dispute
from disputes.parsing import parse_dispute
from disputes.services import dispute_apply
from gateways.disputes import DisputeResult
from payments.models import ChangeSource, Payment

logger = logging.getLogger(__name__)


def _payment_of(result: DisputeResult) -> Payment | None:
    if result.intent_reference:
        payment = Payment.objects.filter(gateway_reference=result.intent_reference).first()
        if payment is not None:
            return payment
    if result.charge_reference:
        sibling = Dispute.objects.filter(charge_reference=result.charge_reference).select_related("payment").first()
        if sibling is not None:
            return sibling.payment
    return None


def dispute_news(data: dict[str, Any], *, event_type: str) -> tuple[Dispute | None, bool]:
    """charge.dispute.*: the dispute as the gateway sent it. Returns (dispute, moved); None when not ours."""
    result = parse_dispute(data, event_type=event_type)
    known = Dispute.objects.filter(gateway_reference=result.reference).values_list("gateway_name", flat=True).first()
    if known is not None:
        return dispute_apply(result=result, gateway_name=known, source=ChangeSource.WEBHOOK)
    payment = _payment_of(result)
    if payment is None:
        logger.info("A dispute of a payment we do not know", extra={"dispute": result.reference})
        return None, False
    return dispute_apply(
        result=result, gateway_name=payment.gateway, payment_id=payment.pk, source=ChangeSource.WEBHOOK
    )
