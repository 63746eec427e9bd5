"""The outbox relay: publish stored events to the broker, at least once, in order per subject (a payment).

Events are written in the same transaction as the change they describe; this module moves them to
the topic exchange `payment.events` (routing key = event type). It selects by "not yet published"
(never by "sequence above the last one sent", which would skip a row that commits late), locks
the batch with `FOR UPDATE SKIP LOCKED` so any number of relays can run at once, publishes, then
marks the rows published in the same transaction. A crash between publishing and the commit
publishes the row again on the next run: consumers dedupe by the message id (the event id).

An event waits while an earlier event of the same subject is still unpublished (held by another
relay, or failing), so a payment's events (its refunds' included) leave in order. A row that fails
`OUTBOX_MAX_PUBLISH_ATTEMPTS` times is dead-lettered: skipped from then on (and visible in the
Event admin), so it never blocks the rest.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from kombu import Connection, Exchange, Producer
from kombu.exceptions import KombuError

from events.locks import lock_unpublished_batch, unpublished_events
from events.models import Event
from events.rendering import render_event

logger = logging.getLogger(__name__)

EXCHANGE = Exchange("payment.events", type="topic", durable=True)
PUBLISH_ERRORS = (KombuError, OSError, ConnectionError, TimeoutError)


def events_broker_url() -> str:
    return settings.EVENTS_BROKER_URL


class EventPublisher:
    """Publishes rendered events on one broker connection, with publisher confirms where available."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.producer = Producer(connection.default_channel, exchange=EXCHANGE)
        EXCHANGE(connection.default_channel).declare()

    def publish(self, event: Event, *, replay: bool = False) -> None:
        headers = {
            "event_type": event.type,
            "sequence": event.sequence,
            "subject": event.subject_id,
            "payment_id": event.subject_id if event.subject_type == "payment" else None,
        }
        if replay:
            headers["replay"] = True
        self.producer.publish(
            render_event(event),
            routing_key=event.type,
            serializer="json",
            message_id=event.public_id,
            headers=headers,
            delivery_mode=2,
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.5},
        )


@contextmanager
def publisher() -> Iterator[EventPublisher]:
    # confirm_publish makes py-amqp wait for the broker's ack (RabbitMQ); Redis has no confirms.
    with Connection(events_broker_url(), transport_options={"confirm_publish": True}, connect_timeout=5) as conn:
        conn.ensure_connection(max_retries=2)
        yield EventPublisher(conn)


def _publishable(batch: list[Event]) -> set[int]:
    """Sequences of the batch that may leave now without overtaking an earlier event of their subject.

    Two relays scanning with SKIP LOCKED can interleave, so a batch may hold a payment's events 1 and
    3 while another relay holds 2: only the run of a subject's unpublished events that starts at its
    oldest and has no gap may go.
    """
    in_batch = {event.sequence for event in batch}
    subjects = {event.subject_id for event in batch}
    allowed: set[int] = set()
    waiting: dict[str, list[int]] = {}
    rows = (
        unpublished_events()
        .filter(subject_id__in=subjects, sequence__lte=batch[-1].sequence)
        .order_by("sequence")
        .values_list("subject_id", "sequence")
    )
    for subject_id, sequence in rows:
        waiting.setdefault(subject_id, []).append(sequence)
    for sequences in waiting.values():
        for sequence in sequences:
            if sequence not in in_batch:
                break  # a gap: held by another relay, or committed late; the rest waits
            allowed.add(sequence)
    return allowed


def outbox_relay(*, batch_size: int = 100, max_batches: int | None = None) -> int:
    """Publish unpublished events in sequence order; returns how many were published."""
    published = 0
    batches = 0
    with publisher() as pub:
        while max_batches is None or batches < max_batches:
            batches += 1
            with transaction.atomic():
                batch = lock_unpublished_batch(batch_size)
                if not batch:
                    break
                allowed = _publishable(batch)
                done: list[int] = []
                failed: list[int] = []
                blocked_subjects: set[str] = set()
                for event in batch:
                    if event.sequence not in allowed or event.subject_id in blocked_subjects:
                        continue
                    try:
                        pub.publish(event)
                    except PUBLISH_ERRORS as exc:
                        logger.warning("Event not published", extra={"event": event.public_id, "error": repr(exc)})
                        failed.append(event.sequence)
                        blocked_subjects.add(event.subject_id)  # keep this subject's order
                        continue
                    done.append(event.sequence)
                now = timezone.now()
                Event.objects.filter(sequence__in=done).update(
                    published_at=now, publish_attempts=F("publish_attempts") + 1
                )
                Event.objects.filter(sequence__in=failed).update(publish_attempts=F("publish_attempts") + 1)
            published += len(done)
            if not done:
                break  # everything left is held back or failing: try again on the next run
    if published:
        logger.info("Outbox relay published events", extra={"published": published})
    return published


def events_replay(*, events: QuerySet[Event], progress: Any = None) -> int:
    """Republish stored events (header `replay: true`), in sequence order; returns how many."""
    count = 0
    with publisher() as pub:
        for event in events.iterator(chunk_size=500):
            pub.publish(event, replay=True)
            count += 1
            if progress:
                progress(count)
    return count
