"""Row locks of the outbox: a relay claims a batch with SKIP LOCKED, so any number of relays run at once."""

from dataclasses import dataclass, replace
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast

from events.models import Event

# The debounce guard of the relay trigger (see events.services): set by the first commit, cleared by the relay.
RELAY_GUARD_KEY = "events:relay-scheduled"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """An event a relay claimed: what its message is made of, with the stored data as JSON text.

    `in_order` is false when an earlier unpublished event of the same subject is not in the batch
    (another relay holds it locked, or its transaction committed after the batch was read): the row
    must wait, or it would overtake that event.
    """

    sequence: int
    public_id: str
    type: str
    subject_type: str
    subject_id: str
    created_at: datetime
    schema_version: int
    data_json: str
    in_order: bool = True


OUTBOX_ROW_FIELDS = (
    "sequence",
    "public_id",
    "type",
    "subject_type",
    "subject_id",
    "created_at",
    "schema_version",
    "data_json",
)


def outbox_rows(events: QuerySet[Event]) -> QuerySet[Event, tuple]:
    """The rows of `events` as `OutboxRow` fields (values_list: no model instances, the JSON left as text)."""
    return events.annotate(data_json=Cast("data", TextField())).values_list(*OUTBOX_ROW_FIELDS)


def unpublished_events() -> QuerySet[Event]:
    """Events still to publish (not dead-lettered: attempts left)."""
    return Event.objects.filter(published_at__isnull=True, publish_attempts__lt=settings.OUTBOX_MAX_PUBLISH_ATTEMPTS)


# One statement: lock the oldest unpublished rows no other relay holds (the partial index of unpublished
# events), and find per subject the oldest unpublished row older than the batch's last that the batch
# does not hold. A subject's rows from that one on are not `in_order`. Both read one snapshot; a
# subject's events are written under its row lock, so a snapshot that sees an event sees every
# earlier event of its subject.
_LOCK_BATCH_SQL = """
WITH batch AS MATERIALIZED (
    SELECT sequence, public_id, type, subject_type, subject_id, created_at, schema_version, data::text AS data_json
    FROM {table}
    WHERE published_at IS NULL AND publish_attempts < %(max_attempts)s
    ORDER BY sequence
    LIMIT %(batch_size)s
    FOR UPDATE SKIP LOCKED
), held AS (
    SELECT other.subject_id, min(other.sequence) AS first_held
    FROM {table} other
    WHERE other.published_at IS NULL AND other.publish_attempts < %(max_attempts)s
      AND other.sequence < (SELECT max(sequence) FROM batch)
      AND NOT EXISTS (SELECT 1 FROM batch WHERE batch.sequence = other.sequence)
    GROUP BY other.subject_id
)
SELECT batch.sequence, batch.public_id, batch.type, batch.subject_type, batch.subject_id, batch.created_at,
       batch.schema_version, batch.data_json, (held.first_held IS NULL OR batch.sequence < held.first_held) AS in_order
FROM batch LEFT JOIN held ON held.subject_id = batch.subject_id
ORDER BY batch.sequence
"""


def lock_unpublished_batch(batch_size: int) -> list[OutboxRow]:
    """Lock the oldest unpublished events no other relay holds, in sequence order (inside `transaction.atomic()`).

    On PostgreSQL one statement (`FOR UPDATE SKIP LOCKED`, with the ordering check folded in); elsewhere
    (SQLite in development: no row locks) `lock_unpublished_batch_portable`.
    """
    if connection.vendor != "postgresql":
        return lock_unpublished_batch_portable(batch_size)
    sql = _LOCK_BATCH_SQL.format(table=connection.ops.quote_name(Event._meta.db_table))
    params = {"max_attempts": settings.OUTBOX_MAX_PUBLISH_ATTEMPTS, "batch_size": batch_size}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [OutboxRow(*row) for row in cursor.fetchall()]


def lock_unpublished_batch_portable(batch_size: int) -> list[OutboxRow]:
    """`lock_unpublished_batch` in two ORM queries, on any database: the batch, then the earlier events it lacks."""
    locked = unpublished_events().select_for_update(skip_locked=True, of=("self",)).order_by("sequence")
    batch = [OutboxRow(*row) for row in outbox_rows(locked)[:batch_size]]
    if not batch:
        return batch
    in_batch = {row.sequence for row in batch}
    first_held: dict[str, int] = {}
    earlier = unpublished_events().filter(sequence__lt=batch[-1].sequence).order_by("sequence")
    for subject_id, sequence in earlier.values_list("subject_id", "sequence"):
        if sequence not in in_batch:
            first_held.setdefault(subject_id, sequence)
    return [
        row if row.sequence < first_held.get(row.subject_id, row.sequence + 1) else replace(row, in_order=False)
        for row in batch
    ]
