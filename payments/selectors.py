"""Reads of payments and events, shared by the API, the admin and commands."""

from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet
from rest_framework.exceptions import NotFound, ValidationError

from accounts.models import ApiRole, User
from payments.db import OwnTransactionId, SnapshotXmin
from payments.models import Event, Payment


def payment_queryset_for(*, client: User) -> QuerySet[Payment]:
    """Finance clients read every payment; a storefront only its own."""
    payments = Payment.objects.select_related("risk_assessment")
    if client.api_role == ApiRole.FINANCE:
        return payments.all()
    return payments.filter(client=client)


def payment_get(*, client: User, public_id: str) -> Payment:
    """:raises NotFound: no such payment for this client (another client's payment is 404, never 403)."""
    payment = payment_queryset_for(client=client).filter(public_id=public_id).first()
    if payment is None:
        raise NotFound()
    return payment


def event_feed(
    *,
    client: User,
    type: str | None = None,  # noqa: A002
    payment_id: int | None = None,
    payment_public_id: str | None = None,
) -> QuerySet[Event]:
    """Events visible to the client, in feed order.

    Sequence numbers are handed out before commit, so ordering by sequence alone could show event
    11 while event 10's transaction is still open and then skip 10. The feed therefore holds back
    every row written by a transaction that may still be running (transaction id at or above the
    snapshot's xmin) and orders by (transaction id, sequence): rows that become visible later always
    sort after everything already shown, so `after=` never skips one.
    """
    events = Event.objects.select_related("payment")
    if client.api_role != ApiRole.FINANCE:
        events = events.filter(payment__client=client)
    if type:
        events = events.filter(type=type)
    if payment_id is not None:
        events = events.filter(payment_id=payment_id)
    if payment_public_id:
        events = events.filter(payment__public_id=payment_public_id)
    if connection.vendor == "postgresql":
        events = events.filter(
            # every transaction below xmin has ended; a transaction always sees its own rows
            Q(transaction_id__lt=SnapshotXmin()) | Q(transaction_id=OwnTransactionId())
        )
    return events.order_by("transaction_id", "sequence")


def event_page(*, feed: QuerySet[Event], after: str | None, limit: int, client: User) -> list[Event]:
    """The next `limit` events of the feed after the event `after` (an `evt_` id)."""
    if after:
        visible = Event.objects.all()
        if client.api_role != ApiRole.FINANCE:
            visible = visible.filter(payment__client=client)
        position: Any = visible.filter(public_id=after).values_list("transaction_id", "sequence").first()
        if position is None:
            raise ValidationError({"after": ["No such event."]})
        transaction_id, sequence = position
        feed = feed.filter(
            Q(transaction_id__gt=transaction_id) | Q(transaction_id=transaction_id, sequence__gt=sequence)
        )
    return list(feed[:limit])
