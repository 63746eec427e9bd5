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

A batch costs a fixed number of round trips, whatever its size: one statement locks it and finds which
of its events must wait for an earlier one of their subject that it does not hold
(`events.locks.lock_unpublished_batch`), one UPDATE marks it published (a second counts failed
attempts, if any). Publishing:

- **RabbitMQ** (py-amqp): publisher confirms stay on. The channel is put in confirm mode once and the
  batch is sent in rounds, one event per subject per round; each round is sent without waiting and its
  confirms are awaited together. So an event leaves only once the broker confirmed its subject's
  previous one, as with a wait per message: a nack (or a lost connection) never lets a later event of
  the subject overtake an earlier one. A round trip per round, not per message; messages go straight
  through py-amqp (the properties kombu would set), which halves the client's cost per message.
  Waiting once per batch instead is faster only when a subject has many events in one batch (about
  a quarter faster on the bench's deep backlog, the same on a wide one) and loses the order on a nack.
- **Redis**: no confirms exist. The batch goes in one pipeline (kombu's producer batch, one round trip
  for its LPUSHes) with the exchange's bindings read once per batch instead of once per message. If
  the pipeline fails, nothing of the batch is marked: all of it is published again, in order.
- Other transports publish message by message.

A failed publication counts one attempt for the first unconfirmed event of each subject; the later
events of that subject in the batch wait, untouched, and the run stops (the next trigger or the beat
sweep tries again).
"""

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from time import monotonic
from typing import Any

import amqp
from amqp import spec
from amqp.exceptions import AMQPError
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from kombu import Connection, Exchange, Producer
from kombu.exceptions import KombuError

from events.locks import OutboxRow, lock_unpublished_batch, outbox_rows
from events.models import Event
from events.rendering import render_event_json

logger = logging.getLogger(__name__)

EXCHANGE = Exchange("payment.events", type="topic", durable=True)
PUBLISH_ERRORS = (KombuError, AMQPError, OSError, ConnectionError, TimeoutError)
DEFAULT_BATCH_SIZE = 500
# How long a round of publisher confirms may take before its unconfirmed events count as failed.
CONFIRM_TIMEOUT_SECONDS = 10.0


def events_broker_url() -> str:
    return settings.EVENTS_BROKER_URL


@dataclass
class Publication:
    """What became of a batch: confirmed sequences, sequences that failed (one per subject), the error."""

    published: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    error: BaseException | None = None


class _Confirms:
    """Publisher confirms on a py-amqp channel, awaited per round of messages instead of per message."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        channel.confirm_select()
        self.last_tag = 0  # delivery tags count the messages published on the channel since confirm.select
        self.pending: dict[int, OutboxRow] = {}
        self.acked: list[OutboxRow] = []
        self.nacked: list[OutboxRow] = []
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)

    def sent(self, row: OutboxRow) -> None:
        self.last_tag += 1
        self.pending[self.last_tag] = row

    def _settle(self, tag: int, multiple: bool, into: list[OutboxRow]) -> None:
        tags = [t for t in self.pending if t <= tag] if multiple else [tag]
        for t in tags:
            row = self.pending.pop(t, None)
            if row is not None:
                into.append(row)

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, self.acked)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, self.nacked)

    def wait(self, timeout: float = CONFIRM_TIMEOUT_SECONDS) -> None:
        """Until the broker has acked or nacked every message sent (TimeoutError past `timeout`)."""
        deadline = monotonic() + timeout
        while self.pending:
            remaining = deadline - monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self.pending)} publisher confirm(s) missing after {timeout} s")
            self.channel.wait([spec.Basic.Ack, spec.Basic.Nack], timeout=remaining)


@contextmanager
def _bindings_read_once(channel: Any) -> Iterator[None]:
    """Within a Redis batch, read the exchange's bindings once: kombu reads them (SMEMBERS) per message."""
    read = channel.get_table
    tables: dict[str, Any] = {}

    def get_table(exchange: str) -> Any:
        if exchange not in tables:
            tables[exchange] = read(exchange)
        return tables[exchange]

    channel.get_table = get_table
    try:
        yield
    finally:
        del channel.get_table  # back to the class's own method


def _first_per_subject(rows: Sequence[OutboxRow]) -> list[int]:
    seen: set[str] = set()
    firsts = []
    for row in rows:
        if row.subject_id not in seen:
            seen.add(row.subject_id)
            firsts.append(row.sequence)
    return firsts


class EventPublisher:
    """Publishes rendered events on one broker connection: confirmed on RabbitMQ, pipelined on Redis."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.channel = channel = connection.default_channel
        EXCHANGE(channel).declare()
        self.producer = Producer(channel, exchange=EXCHANGE, auto_declare=False)
        self.errors: tuple[type[BaseException], ...] = (
            PUBLISH_ERRORS + tuple(connection.connection_errors) + tuple(connection.channel_errors)
        )
        self.confirms = _Confirms(channel) if connection.transport.driver_type == "amqp" else None
        self.pipelined = self.confirms is None and self.producer.supports_batch_publish
        self.transport = connection.transport.driver_type

    @staticmethod
    def _headers(row: OutboxRow, replay: bool) -> dict[str, Any]:
        headers: dict[str, Any] = {
            "event_type": row.type,
            "sequence": row.sequence,
            "subject": row.subject_id,
            "payment_id": row.subject_id if row.subject_type == "payment" else None,
            "schema_version": row.schema_version,
        }
        if replay:
            headers["replay"] = True
        return headers

    def _send(self, row: OutboxRow, replay: bool) -> None:
        self.producer.publish(
            render_event_json(row, row.data_json),
            routing_key=row.type,
            content_type="application/json",
            content_encoding="utf-8",
            message_id=row.public_id,
            headers=self._headers(row, replay),
            delivery_mode=2,
        )

    def _send_amqp(self, row: OutboxRow, replay: bool) -> None:
        """`_send` straight through py-amqp: the same message (kombu's properties), at half the cost per message."""
        message = amqp.Message(
            render_event_json(row, row.data_json).encode(),
            priority=0,
            content_type="application/json",
            content_encoding="utf-8",
            application_headers=self._headers(row, replay),
            message_id=row.public_id,
            delivery_mode=2,
        )
        self.channel.basic_publish(message, exchange=EXCHANGE.name, routing_key=row.type)

    def publish(self, rows: Sequence[OutboxRow], *, replay: bool = False) -> Publication:
        """Publish `rows` (in sequence order) and report which the broker took; never raises a broker error."""
        if self.confirms is not None:
            return self._publish_confirmed(self.confirms, rows, replay)
        return self._publish_unconfirmed(rows, replay)

    def _publish_confirmed(self, confirms: _Confirms, rows: Sequence[OutboxRow], replay: bool) -> Publication:
        """In rounds of one event per subject: a round is sent, then its confirms are awaited together."""
        outcome = Publication()
        failed_subjects: set[str] = set()
        waiting = list(rows)
        try:
            while waiting:
                this_round: list[OutboxRow] = []
                later: list[OutboxRow] = []
                subjects: set[str] = set()
                for row in waiting:
                    if row.subject_id in failed_subjects:
                        continue  # its subject's earlier event failed: it waits, to keep the order
                    if row.subject_id in subjects:
                        later.append(row)
                    else:
                        subjects.add(row.subject_id)
                        this_round.append(row)
                for row in this_round:
                    confirms.sent(row)
                    self._send_amqp(row, replay)
                confirms.wait()
                self._settle(confirms, outcome, failed_subjects)
                waiting = later
        except self.errors as exc:
            outcome.error = exc
            self._settle(confirms, outcome, failed_subjects)
            # Sent (or being sent) but not confirmed: one per subject, since a round holds one per subject.
            outcome.failed.extend(row.sequence for row in confirms.pending.values())
            confirms.pending.clear()
        outcome.published.sort()
        outcome.failed.sort()
        return outcome

    @staticmethod
    def _settle(confirms: _Confirms, outcome: Publication, failed_subjects: set[str]) -> None:
        outcome.published.extend(row.sequence for row in confirms.acked)
        for row in confirms.nacked:
            outcome.failed.append(row.sequence)
            failed_subjects.add(row.subject_id)
        confirms.acked.clear()
        confirms.nacked.clear()

    def _publish_unconfirmed(self, rows: Sequence[OutboxRow], replay: bool) -> Publication:
        outcome = Publication()
        try:
            batch = self.producer.batch(max_size=max(len(rows), 1)) if self.pipelined else nullcontext()
            bindings = _bindings_read_once(self.producer.channel) if self.pipelined else nullcontext()
            with bindings, batch:
                for row in rows:
                    self._send(row, replay)
        except self.errors as exc:
            outcome.error = exc
            outcome.failed = _first_per_subject(rows)
            return outcome
        outcome.published = [row.sequence for row in rows]
        return outcome


@contextmanager
def publisher() -> Iterator[EventPublisher]:
    with Connection(events_broker_url(), connect_timeout=5) as conn:
        conn.ensure_connection(max_retries=2)
        yield EventPublisher(conn)


def _count_attempt(sequences: list[int], *, published_at: datetime | None) -> None:
    """One more publish attempt for these events, and their publication time when given.

    On PostgreSQL one statement whatever the count (`= ANY(array)`, not an IN list of as many parameters):
    compiled once and prepared by psycopg like any repeated statement; the ORM compiled a new one per batch size.
    """
    if connection.vendor != "postgresql":
        changes: dict[str, Any] = {"publish_attempts": F("publish_attempts") + 1}
        if published_at is not None:
            changes["published_at"] = published_at
        Event.objects.filter(sequence__in=sequences).update(**changes)
        return
    with connection.cursor() as cursor:
        if published_at is None:
            cursor.execute(_attempt_sql(published=False), [sequences])
        else:
            cursor.execute(_attempt_sql(published=True), [published_at, sequences])


@cache
def _attempt_sql(*, published: bool) -> str:
    quote = connection.ops.quote_name
    attempts = quote(Event._meta.get_field("publish_attempts").column)
    sets = f"{attempts} = {attempts} + 1"
    if published:
        sets = f"{quote(Event._meta.get_field('published_at').column)} = %s, {sets}"
    sequence = quote(Event._meta.get_field("sequence").column)
    return f"UPDATE {quote(Event._meta.db_table)} SET {sets} WHERE {sequence} = ANY(%s::bigint[])"  # noqa: S608 - names


def outbox_relay(*, batch_size: int = DEFAULT_BATCH_SIZE, max_batches: int | None = None) -> int:
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
                ready = [row for row in batch if row.in_order]
                outcome = pub.publish(ready)
                if outcome.published:
                    _count_attempt(outcome.published, published_at=timezone.now())
                if outcome.failed:
                    _count_attempt(outcome.failed, published_at=None)
            published += len(outcome.published)
            if outcome.error is not None:
                logger.warning(
                    "Events not published",
                    extra={"events": len(outcome.failed), "broker": pub.transport, "error": repr(outcome.error)},
                )
                break  # the connection is in doubt: the next run (trigger or beat sweep) tries again
            if not outcome.published:
                break  # everything left is held back or failing: the next run tries again
            if len(batch) < batch_size and len(ready) == len(batch):
                break  # drained (what commits from now on triggers a relay of its own)
    if published:
        logger.info("Outbox relay published events", extra={"published": published})
    return published


def events_replay(*, events: QuerySet[Event], progress: Any = None, chunk_size: int = DEFAULT_BATCH_SIZE) -> int:
    """Republish stored events (header `replay: true`), in sequence order; returns how many."""
    count = 0
    with publisher() as pub:
        chunk: list[OutboxRow] = []
        for row in outbox_rows(events).iterator(chunk_size=chunk_size):
            chunk.append(OutboxRow(*row))
            if len(chunk) == chunk_size:
                count += _replay_chunk(pub, chunk, progress, count)
                chunk = []
        if chunk:
            count += _replay_chunk(pub, chunk, progress, count)
    return count


def _replay_chunk(pub: EventPublisher, chunk: list[OutboxRow], progress: Any, done_before: int) -> int:
    outcome = pub.publish(chunk, replay=True)
    if outcome.error is not None:
        raise outcome.error
    if outcome.failed:
        raise KombuError(f"The broker refused {len(outcome.failed)} replayed event(s)")
    if progress:
        for n in range(done_before + 1, done_before + len(chunk) + 1):
            progress(n)
    return len(chunk)
