"""Writing an event: one row in the outbox, in the transaction of the change it describes.

The relay is triggered after commit, debounced: the first commit that wrote events sets a guard in
the cache and schedules one relay `OUTBOX_RELAY_DELAY_MS` later; commits while the guard stands
schedule nothing, since that relay will see their rows. The relay clears the guard before it reads
the outbox, so a commit that finds no guard always schedules a relay that runs after it. Under any
load, at most one relay is waiting; the beat sweep (`outbox-relay-sweep`) is the safety net. In the first
half of the delay after this process sent the relay, commits skip the cache too (`publish_debounced`).
"""

import logging
from typing import Any

from django.conf import settings
from django.db import transaction

from config.rows import insert
from config.tasks import at_request_end, publish_debounced
from events.locks import RELAY_GUARD_KEY
from events.models import Event
from events.payloads import UnsafeEventPayload, event_safe, strict_payloads, unsafe_keys
from events.tasks import relay_outbox

logger = logging.getLogger(__name__)
# How long the guard stands if the scheduled relay is lost (a broker hiccup): then the next commit schedules again.
GUARD_SECONDS = 5


def event_record(*, type: str, client_id: int, subject_type: str, subject_id: str, data: dict[str, Any]) -> Event:  # noqa: A002
    """Write an event row (the outbox). Call inside the transaction of the change it describes.

    The relay is asked (once per transaction, after commit) to publish it; a periodic sweep catches
    anything that trigger misses. `data` must hold no secret and no personal data (events.payloads):
    a forbidden key is refused when payloads are strict (DEBUG), else stripped and logged as an error.

    :raises UnsafeEventPayload: `data` holds a forbidden key and payloads are strict.
    """
    unsafe = unsafe_keys(data)
    if unsafe:
        if strict_payloads():
            raise UnsafeEventPayload(f"{type} event would carry {', '.join(unsafe)}")
        logger.error("Event payload held forbidden keys; stripped", extra={"event_type": type, "keys": unsafe})
        data = event_safe(data)
    row = Event(type=type, client_id=client_id, subject_type=subject_type, subject_id=subject_id, data=data)
    event = insert(row, deferred=True)  # inside `config.rows.batched()`, with the change's other rows
    connection = transaction.get_connection()
    if not any(callback is _relay_after_commit for _sids, callback, _robust in connection.run_on_commit):
        transaction.on_commit(_relay_after_commit, robust=True)
    return event


def _relay_after_commit() -> None:
    # In a web request, at its end: a request that commits events twice (create + confirm) nudges the relay once.
    at_request_end(_trigger_relay)


def _trigger_relay() -> None:
    # A relay not sent is not lost: the beat sweep (`outbox-relay-sweep`, every 30 s) publishes the rows.
    publish_debounced(
        relay_outbox, guard_key=RELAY_GUARD_KEY, delay_ms=settings.OUTBOX_RELAY_DELAY_MS, guard_seconds=GUARD_SECONDS
    )
