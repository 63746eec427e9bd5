"""`manage.py rotate_encryption_key [--batch-size N] [--from-pk PK] [--dry-run] [--check] [--quiet]`: move every
encrypted column's values (and any legacy plaintext) to the newest key of ENCRYPTION_KEYS, online and resumable.

Each column of `config.encryption.encrypted_fields()` is walked by primary key in batches (keyset pagination).
A batch reads the raw stored values that are not under the newest key (the filter is SQL, so a resumed or a second
run reads only what is left), decrypts them with whichever listed key sealed them (a value that is not `enc1:` is
legacy plaintext and is simply sealed), seals them again under the newest key, and writes them back with one
compare-and-set UPDATE (`… WHERE pk = X AND column = <the value read>`) that commits on its own. A concurrent
writer's change therefore wins (the application always seals with the newest key), no row lock outlives one
batch's UPDATE, and Ctrl-C loses at most the batch in flight. The blind index key (`BLIND_INDEX_KEY`) is separate
and is not rotated here: the indexes are keyed HMACs of the plaintext, which rotation does not change.
"""

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model

from config.encryption import (
    PREFIX,
    DecryptionError,
    EncryptedMixin,
    Keyring,
    encrypted_fields,
    is_encrypted,
    keyring,
)

LOCK_TIMEOUT = "2s"  # a batch never queues long behind a writer's row lock: it is retried, then left for a rerun
LOCK_RETRIES = 3
LOCK_ERRORS = ("55P03", "40P01")  # lock_not_available, deadlock_detected
UNREADABLE_SHOWN = 10  # primary keys named per column in the error


@dataclass
class Column:
    """One encrypted column: where it lives and the SQL that finds its values not under the newest key."""

    model: type[Model]
    field: EncryptedMixin

    @property
    def label(self) -> str:
        return self.field.context

    @property
    def connection(self) -> BaseDatabaseWrapper:
        return connections[router.db_for_write(self.model)]

    def names(self) -> tuple[str, str, str]:
        quote = self.connection.ops.quote_name
        pk = self.model._meta.pk
        assert pk is not None  # noqa: S101 - every concrete model has one
        return quote(self.model._meta.db_table), quote(pk.column), quote(self.field.column)  # type: ignore[attr-defined]

    def pending(self) -> str:
        """The WHERE clause of the values to rotate (its one parameter: the newest key's LIKE pattern)."""
        _table, _pk, column = self.names()
        return f"{column} IS NOT NULL AND {column} <> '' AND {column} NOT LIKE %s"


@dataclass
class Outcome:
    """What one column's pass did."""

    label: str
    pending: int = 0  # values not under the newest key when the pass began
    rotated: int = 0  # sealed again under the newest key (or, with --dry-run, that would be)
    skipped: int = 0  # changed by a writer between our read and our write: the writer's value stands
    unreadable: list[Any] = field(default_factory=list)  # primary keys no listed key opens
    left: int = 0  # still not under the newest key when the pass ended
    seconds: float = 0.0
    longest_batch: float = 0.0  # the longest UPDATE (the longest any row lock was held), in seconds


def pattern(ring: Keyring) -> str:
    return f"{PREFIX}:{ring.current_id}:%"


def count_pending(column: Column, ring: Keyring, *, from_pk: int | None = None) -> int:
    table, pk, _column = column.names()
    sql = f"SELECT count(*) FROM {table} WHERE {column.pending()}"  # noqa: S608 - names from our own models
    params: list[Any] = [pattern(ring)]
    if from_pk is not None:
        sql += f" AND {pk} >= %s"
        params.append(from_pk)
    with column.connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.fetchone()[0])


def _batches(column: Column, ring: Keyring, *, batch_size: int, from_pk: int | None) -> Iterator[list[tuple]]:
    """The values to rotate, by primary key, a batch at a time (each read on its own, no lock taken)."""
    table, pk, name = column.names()
    sql = (
        f"SELECT {pk}, {name} FROM {table} WHERE {column.pending()} AND {pk} > %s "  # noqa: S608 - our own names
        f"ORDER BY {pk} LIMIT %s"
    )
    first = f"SELECT {pk}, {name} FROM {table} WHERE {column.pending()} ORDER BY {pk} LIMIT %s"  # noqa: S608
    after: Any = None if from_pk is None else from_pk - 1
    while True:
        with column.connection.cursor() as cursor:
            if after is None:
                cursor.execute(first, [pattern(ring), batch_size])
            else:
                cursor.execute(sql, [pattern(ring), after, batch_size])
            rows = cursor.fetchall()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def _compare_and_set(column: Column, sealed: Sequence[tuple[Any, str, str]]) -> tuple[int, float]:
    """Write the new values of the rows whose value is still the one read; (rows written, seconds the UPDATE took).

    One statement per batch (its rows as three arrays), committed at once: a row lock lasts one UPDATE. A lock wait
    beyond LOCK_TIMEOUT or a deadlock with a writer is retried a few times (the compare-and-set makes a retry
    safe), then the batch is left to a later run.
    """
    table, pk, name = column.names()
    connection = column.connection
    pk_field = column.model._meta.pk
    assert pk_field is not None  # noqa: S101
    pk_type = pk_field.rel_db_type(connection)  # type: ignore[attr-defined]
    sql = (
        f"UPDATE {table} AS t SET {name} = v.new "  # noqa: S608 - names from our own models
        f"FROM unnest(%s::{pk_type}[], %s::text[], %s::text[]) AS v(pk, old, new) "
        f"WHERE t.{pk} = v.pk AND t.{name} = v.old"
    )
    params = [[row[0] for row in sealed], [row[1] for row in sealed], [row[2] for row in sealed]]
    seconds = 0.0
    for _attempt in range(LOCK_RETRIES):
        started = time.perf_counter()
        try:
            with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                cursor.execute(sql, params)
                written = cursor.rowcount
        except DatabaseError as exc:
            if getattr(exc.__cause__, "sqlstate", None) not in LOCK_ERRORS:
                raise
            seconds = max(seconds, time.perf_counter() - started)
            continue
        return written, max(seconds, time.perf_counter() - started)
    return 0, seconds  # left for the next run: those values are still not under the newest key


def rotate_column(
    column: Column,
    ring: Keyring,
    *,
    batch_size: int,
    from_pk: int | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Outcome:
    """Seal again under the newest key every value of one column that is not under it (legacy plaintext included)."""
    started = time.perf_counter()
    outcome = Outcome(label=column.label, pending=count_pending(column, ring, from_pk=from_pk))
    context = column.field.context
    done = 0
    for rows in _batches(column, ring, batch_size=batch_size, from_pk=from_pk):
        sealed = []
        for pk, raw in rows:
            try:
                # the JSON field's plaintext is its JSON text: sealed again as it is, never re-serialised
                text = ring.decrypt(raw, context=context) if is_encrypted(raw) else raw
            except DecryptionError:
                outcome.unreadable.append(pk)
                continue
            sealed.append((pk, raw, text if dry_run else ring.encrypt(text, context=context)))
        done += len(rows)
        if dry_run:
            outcome.rotated += len(sealed)
        elif sealed:
            written, seconds = _compare_and_set(column, sealed)
            outcome.rotated += written
            outcome.skipped += len(sealed) - written
            outcome.longest_batch = max(outcome.longest_batch, seconds)
        if progress:
            progress(done, outcome.pending)
    outcome.left = outcome.pending if dry_run else count_pending(column, ring, from_pk=from_pk)
    outcome.seconds = time.perf_counter() - started
    return outcome


def columns() -> list[Column]:
    return [Column(model=model, field=field) for model, field in encrypted_fields()]


class _Bar:
    """A progress bar redrawn in place on a terminal; otherwise a line every 10 seconds (as `reconcile` does)."""

    def __init__(self, command: BaseCommand, label: str) -> None:
        self.stdout = command.stdout
        self.is_tty = self.stdout.isatty()
        self.label = label
        self.last_line = 0.0
        self.drawn = False

    def __call__(self, done: int, expected: int) -> None:
        if self.is_tty:
            share = min(done / expected, 1.0) if expected else 1.0
            self.stdout.write(f"\r[{'#' * int(share * 30):<30}] {done:,} / ~{expected:,} {self.label}", ending="")
            self.stdout.flush()
            self.drawn = True
        elif time.monotonic() - self.last_line >= 10:
            self.last_line = time.monotonic()
            self.stdout.write(f"{self.label}: {done:,} values read (of about {expected:,})")

    def end(self) -> None:
        if self.drawn:
            self.stdout.write("")


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted column under the newest key of ENCRYPTION_KEYS (and encrypt legacy plaintext), "
        "in batches that each commit on their own: online (a row is locked for one batch's UPDATE at most, and a "
        "concurrent writer's change wins), resumable (a rerun reads only what is left; Ctrl-C is safe). Add the new "
        "key first in ENCRYPTION_KEYS and deploy it everywhere before running; remove the old key only once --check "
        "passes. The blind index key (BLIND_INDEX_KEY) is not rotated."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=1000, help="rows per batch (default 1000)")
        parser.add_argument("--from-pk", type=int, help="start at this primary key in every table")
        parser.add_argument("--dry-run", action="store_true", help="count what would change, change nothing")
        parser.add_argument(
            "--check", action="store_true", help="change nothing; exit 1 if any value is not under the newest key"
        )
        parser.add_argument("--quiet", action="store_true", help="no progress output")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        ring = keyring()
        if options["check"]:
            self._check(ring, from_pk=options["from_pk"])
            return
        outcomes = []
        started = time.perf_counter()
        for column in columns():
            bar = None if options["quiet"] else _Bar(self, column.label)
            try:
                outcome = rotate_column(
                    column,
                    ring,
                    batch_size=options["batch_size"],
                    from_pk=options["from_pk"],
                    dry_run=options["dry_run"],
                    progress=bar,
                )
            finally:
                if bar:
                    bar.end()
            outcomes.append(outcome)
            self._line(outcome, dry_run=options["dry_run"])
        self._summary(outcomes, ring, seconds=time.perf_counter() - started, dry_run=options["dry_run"])

    def _check(self, ring: Keyring, *, from_pk: int | None) -> None:
        behind = [(column.label, count_pending(column, ring, from_pk=from_pk)) for column in columns()]
        for label, count in behind:
            if count:
                self.stdout.write(f"{label}: {count:,} values not under key {ring.current_id}")
        total = sum(count for _label, count in behind)
        if total:
            raise CommandError(
                f"{total:,} values in {sum(1 for _l, c in behind if c)} columns are not under the newest key "
                f"{ring.current_id}: run rotate_encryption_key.",
                returncode=1,
            )
        self.stdout.write(
            self.style.SUCCESS(f"Every encrypted value ({len(behind)} columns) is under key {ring.current_id}.")
        )

    def _line(self, outcome: Outcome, *, dry_run: bool) -> None:
        verb = "to re-encrypt" if dry_run else "re-encrypted"
        line = (
            f"{outcome.label}: {outcome.rotated:,} {verb}, {outcome.skipped:,} skipped (changed meanwhile), "
            f"{len(outcome.unreadable):,} unreadable, {outcome.left:,} left, {outcome.seconds:.1f} s"
        )
        if not dry_run and outcome.rotated:
            line += f" (longest batch {outcome.longest_batch * 1000:.0f} ms)"
        self.stdout.write(line)

    def _summary(self, outcomes: list[Outcome], ring: Keyring, *, seconds: float, dry_run: bool) -> None:
        rotated = sum(outcome.rotated for outcome in outcomes)
        left = sum(outcome.left for outcome in outcomes)
        unreadable = [outcome for outcome in outcomes if outcome.unreadable]
        if unreadable:
            named = "; ".join(
                f"{outcome.label} pk {', '.join(str(pk) for pk in outcome.unreadable[:UNREADABLE_SHOWN])}"
                + (" …" if len(outcome.unreadable) > UNREADABLE_SHOWN else "")
                for outcome in unreadable
            )
            raise CommandError(
                f"{sum(len(o.unreadable) for o in unreadable):,} values no key in ENCRYPTION_KEYS opens (tampered, or "
                f"their key was removed): {named}. Keep the old keys listed until they are resolved.",
                returncode=1,
            )
        if dry_run:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Dry run: {rotated:,} values in {len(outcomes)} columns would move to key {ring.current_id}; "
                    "nothing changed."
                )
            )
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"{rotated:,} values in {len(outcomes)} columns re-encrypted under key {ring.current_id} "
                f"in {seconds:.1f} s."
            )
        )
        if left:
            self.stdout.write(
                self.style.WARNING(
                    f"{left:,} values are still not under {ring.current_id} (written meanwhile under an older key, "
                    "or their batch met a lock): run the command again."
                )
            )
