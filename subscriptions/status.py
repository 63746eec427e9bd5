"""The one writer of a subscription's `status` and its history: every change goes through here.

The caller holds the subscription's row lock inside a transaction; the history row and the event are written
in that same transaction (the outbox).
"""

import logging
from typing import Any

from accounts.models import User
from events.services import event_record
from subscriptions import states
from subscriptions.models import Invoice, Subscription, SubscriptionStatusChange
from subscriptions.rendering import invoice_event_data, subscription_event_data

logger = logging.getLogger(__name__)


def subscription_event(subscription: Subscription, type: str) -> None:  # noqa: A002
    event_record(
        type=type,
        client_id=subscription.client_id,
        subject_type="subscription",
        subject_id=subscription.public_id,
        data=subscription_event_data(subscription),
    )


def invoice_event(invoice: Invoice, type: str) -> None:  # noqa: A002
    event_record(
        type=type,
        client_id=invoice.client_id,
        subject_type="invoice",
        subject_id=invoice.public_id,
        data=invoice_event_data(invoice),
    )


def subscription_status_initial(subscription: Subscription, *, source: str) -> None:
    """A subscription just inserted: its history row from nothing and `subscription.created`."""
    SubscriptionStatusChange.objects.create(
        subscription=subscription, from_status="", to_status=subscription.status, source=source
    )
    subscription_event(subscription, "subscription.created")


def subscription_status_change(
    subscription: Subscription,
    to_status: str,
    *,
    source: str,
    actor: User | None = None,
    reason: str = "",
    fields: dict[str, Any] | None = None,
) -> Subscription:
    """Move a locked subscription through the state machine (and save `fields` with it), with history and event.

    :raises states.InvalidSubscriptionTransition: the state machine forbids the move.
    """
    from_status = subscription.status
    if to_status != from_status:
        states.check_transition(from_status, to_status)
    changed = dict(fields or {})
    if to_status != from_status:
        changed["status"] = to_status
    for name, value in changed.items():
        setattr(subscription, name, value)
    subscription.save(update_fields=[*changed, "updated_at"])
    if to_status != from_status:
        SubscriptionStatusChange.objects.create(
            subscription=subscription,
            from_status=from_status,
            to_status=to_status,
            source=source,
            actor=actor,
            reason=reason,
        )
        logger.info(
            "Subscription status changed",
            extra={"subscription": subscription.public_id, "from": from_status, "to": to_status, "source": source},
        )
    # Entering past_due or canceled has its own event; every other change is `subscription.updated`.
    subscription_event(subscription, states.EVENT_FOR_STATUS.get(to_status, "subscription.updated"))
    return subscription
