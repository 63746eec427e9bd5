"""Reads of the event log: the feed a client follows with `after=`, and the rows a replay republishes."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet
from rest_framework.exceptions import ValidationError

from accounts.models import ApiRole, User
from events.db import OwnTransactionId, SnapshotXmin
from events.models import Event


def _visible_to(client: User) -> QuerySet[Event]:
    """Finance clients read every event; a storefront only those of its own objects."""
    if client.api_role == ApiRole.FINANCE:
        return Event.objects.all()
    return Event.objects.filter(client=client)


def event_feed(*, client: User, type: str | None = None, subject_id: str | None = None) -> QuerySet[Event]:  # noqa: A002
    """Events visible to the client, in feed order.

    Sequence numbers are handed out before commit, so ordering by sequence alone could show event
    11 while event 10's transaction is still open and then skip 10. The feed therefore holds back
    every row written by a transaction that may still be running (transaction id at or above the
    snapshot's xmin) and orders by (transaction id, sequence): rows that become visible later always
    sort after everything already shown, so `after=` never skips one.
    """
    events = _visible_to(client)
    if type:
        events = events.filter(type=type)
    if subject_id:
        events = events.filter(subject_id=subject_id)
    if connection.vendor == "postgresql":
        events = events.filter(
            # every transaction below xmin has ended; a transaction always sees its own rows
            Q(transaction_id__lt=SnapshotXmin()) | Q(transaction_id=OwnTransactionId())
        )
    return events.order_by("transaction_id", "sequence")


def event_page(*, feed: QuerySet[Event], after: str | None, limit: int, client: User) -> list[Event]:
    """The next `limit` events of the feed after the event `after` (an `evt_` id).

    :raises ValidationError: `after` names no event this client can see.
    """
    if after:
        position: Any = _visible_to(client).filter(public_id=after).values_list("transaction_id", "sequence").first()
        if position is None:
            raise ValidationError({"after": ["No such event."]})
        transaction_id, sequence = position
        feed = feed.filter(
            Q(transaction_id__gt=transaction_id) | Q(transaction_id=transaction_id, sequence__gt=sequence)
        )
    return list(feed[:limit])


def event_list_for_subject(*, subject_id: str, limit: int = 100) -> list[Event]:
    """The newest events of one subject (the back office's payment page)."""
    return list(Event.objects.filter(subject_id=subject_id).order_by("-sequence")[:limit])


def events_for_replay(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    types: Iterable[str] = (),
    subject_id: str | None = None,
) -> QuerySet[Event]:
    """Stored events to republish, in sequence order."""
    events = Event.objects.order_by("sequence")
    if since:
        events = events.filter(created_at__gte=since)
    if until:
        events = events.filter(created_at__lt=until)
    types = list(types)
    if types:
        events = events.filter(type__in=types)
    if subject_id:
        events = events.filter(subject_id=subject_id)
    return events
