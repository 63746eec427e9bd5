"""Writing an event: one row in the outbox, in the transaction of the change it describes."""

from typing import Any

from django.db import transaction

from events.models import Event
from events.tasks import relay_outbox


def event_record(*, type: str, client_id: int, subject_type: str, subject_id: str, data: dict[str, Any]) -> Event:  # noqa: A002
    """Write an event row (the outbox). Call inside the transaction of the change it describes.

    The relay is asked (once per transaction, after commit) to publish it; a periodic sweep catches
    anything that trigger misses.
    """
    event = Event.objects.create(
        type=type, client_id=client_id, subject_type=subject_type, subject_id=subject_id, data=data
    )
    connection = transaction.get_connection()
    if not any(callback is _trigger_relay for _sids, callback, _robust in connection.run_on_commit):
        transaction.on_commit(_trigger_relay, robust=True)
    return event


def _trigger_relay() -> None:
    relay_outbox.delay()
