"""API idempotency keys (IETF `Idempotency-Key` draft, Stripe's behaviour).

A key is claimed with an `INSERT … ON CONFLICT DO NOTHING` followed by a row lock, so concurrent
requests with one key never both do the work (no check-then-act). What is stored and replayed:
responses of requests that did work (2xx, 402, 409 state errors). Requests rejected before any
work (4xx) free the key; 5xx keep the fingerprint but release the lock, so the client may retry
with the same key and the service finishes what it had started.

Creates fold the key into their own transactions (`run_idempotent_service`, `KeyClaim`): the key is
claimed by one INSERT in the transaction that inserts the payment or refund, and the response is
stored by the transaction that applies the gateway's answer, so a key costs no commit of its own.
"""

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar, cast

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from config.api.errors import envelope_for_exception
from config.api.idempotency import (
    REPLAYED_HEADER,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    parse_key,
    request_fingerprint,
    should_store,
)
from config.metrics import api_error_count
from config.rows import insert_row, update_row
from payments.locks import lock_idempotency_key
from payments.metrics import idempotency_counted
from payments.models import IdempotencyKey

T = TypeVar("T")


@dataclass(frozen=True)
class Claim:
    """Either a stored response to replay, or a lock on the key to do the work under."""

    row_id: int
    replay: tuple[int, Any] | None = None
    fresh: bool = False  # the key is new: nothing was started with it before
    reserved: int | None = None  # an id drawn with the claim (`_insert_new_key`'s `reserve`)


class Replay(Exception):  # noqa: N818 - not an error: the answer is already stored
    """The key's request was answered before: send the stored response again (raised inside a service's transaction)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class KeyTaken(Exception):  # noqa: N818 - a signal to take the full claim, not an error
    """The key exists, so the answer could not be stored with the work (raised inside the service's transaction)."""


def _insert_new_key(
    *,
    client: User,
    key: str,
    fingerprint: str,
    token: str,
    now: Any,
    locks: Sequence[int] = (),
    reserve: type[Model] | None = None,
) -> tuple[int | None, int | None]:
    """`INSERT … ON CONFLICT DO NOTHING RETURNING id`, locked by `token`: the new id (None when the key exists).

    In the same statement (PostgreSQL), so a create's transaction spends no round trip on them: the advisory
    `locks` are taken in key order (after the INSERT, so a request waiting for another's key holds none of
    them), and an id of `reserve`'s table is drawn from its sequence (its row can then go in a later batch,
    `config.rows`). Elsewhere (SQLite, which serializes writers) neither. Returns (the key's id or None, the
    reserved id or None).
    """
    quote = connection.ops.quote_name
    table = quote(IdempotencyKey._meta.db_table)
    insert = (
        f"INSERT INTO {table} "  # noqa: S608 - the table name is ours, every value a parameter
        "(client_id, key, fingerprint, lock_token, locked_at, created_at, response_status, response_body) "
        "VALUES (%s, %s, %s, %s, %s, %s, NULL, NULL) ON CONFLICT DO NOTHING RETURNING id"
    )
    params: list[Any] = [client.pk, key, fingerprint, token, now, now]
    if connection.vendor != "postgresql" or not (locks or reserve):  # SQLite serializes writers: no locks there
        with connection.cursor() as cursor:
            cursor.execute(insert, params)
            row = cursor.fetchone()
        return (row[0] if row else None), None
    members = [f"k AS ({insert})"]
    columns = ["(SELECT id FROM k)"]
    if locks:
        # `(SELECT count(*) FROM k) >= 0` makes the locks wait for the INSERT's end: it runs first.
        members.append(
            "l AS (SELECT pg_advisory_xact_lock(o.key) FROM (SELECT unnest(%s::bigint[]) AS key ORDER BY 1) AS o"
            " WHERE (SELECT count(*) FROM k) >= 0)"
        )
        params.append(sorted(set(locks)))
        columns.append("(SELECT count(*) FROM l)")
    if reserve is not None:
        columns.append("nextval(pg_get_serial_sequence(%s, %s))")
        params += [reserve._meta.db_table, reserve._meta.pk.column]
    sql = f"WITH {', '.join(members)} SELECT {', '.join(columns)}"  # noqa: S608 - our names and SQL
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0], (row[-1] if reserve is not None else None)


def idempotency_claim(*, client: User, key: str, fingerprint: str) -> Claim:
    """Claim the key for this request, or return the stored response to replay.

    :raises IdempotencyKeyReused: the key belongs to a different request (422).
    :raises IdempotencyKeyInUse: the first request with this key is still running (409).
    """
    with transaction.atomic():
        return _claim(client=client, key=key, fingerprint=fingerprint)


def _claim(
    *, client: User, key: str, fingerprint: str, locks: Sequence[int] = (), reserve: type[Model] | None = None
) -> Claim:
    """`idempotency_claim` inside the caller's transaction; a new key costs the one INSERT (with `locks`, `reserve`:
    see `_insert_new_key`)."""
    token = uuid.uuid4().hex
    now = timezone.now()
    new_id, reserved = _insert_new_key(
        client=client, key=key, fingerprint=fingerprint, token=token, now=now, locks=locks, reserve=reserve
    )
    if new_id is not None:
        return Claim(row_id=new_id, fresh=True, reserved=reserved)
    return _claim_taken(client=client, key=key, fingerprint=fingerprint, token=token, now=now, reserved=reserved)


def _claim_taken(*, client: User, key: str, fingerprint: str, token: str, now: Any, reserved: int | None) -> Claim:
    """The key exists: decide under its row lock (replay, refuse, or take it over from an expired lock)."""
    row = lock_idempotency_key(client=client, key=key)
    if row.created_at < now - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS):
        # Expired: a new row (new id), so nothing keyed by the old one is resumed by mistake.
        row.delete()
        fresh = IdempotencyKey.objects.create(
            client=client, key=key, fingerprint=fingerprint, lock_token=token, locked_at=now, created_at=now
        )
        return Claim(row_id=fresh.pk, reserved=reserved)
    if row.fingerprint != fingerprint:
        raise IdempotencyKeyReused()
    if row.response_status is not None:
        return Claim(row_id=row.pk, replay=(row.response_status, row.response_body), reserved=reserved)
    lock_expired = row.locked_at is None or row.locked_at < now - timedelta(
        seconds=settings.IDEMPOTENCY_LOCK_TIMEOUT_SECONDS
    )
    if not lock_expired:
        raise IdempotencyKeyInUse()
    row.lock_token = token
    row.locked_at = now
    row.save(update_fields=["lock_token", "locked_at"])
    return Claim(row_id=row.pk, reserved=reserved)


def idempotency_complete(*, row_id: int, status: int, body: Any) -> None:
    """Store the response, free the key (rejected before work) or release the lock (5xx)."""
    rows = IdempotencyKey.objects.filter(pk=row_id)
    if should_store(status):
        rows.update(response_status=status, response_body=body, locked_at=None, lock_token="")
    elif status >= 500:
        rows.update(locked_at=None, lock_token="")
    else:
        rows.delete()


def idempotency_purge_expired() -> int:
    """Delete keys past their retention; returns how many."""
    cutoff = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted


@idempotency_counted
def run_idempotent(request: Request, *, required: bool, handler: Callable[[str], Response]) -> Response:
    """Run `handler` once per (client, key); replay its stored response for repeats.

    The handler gets a reference to the claimed key (`idem_<id>`, or "" without a key) that a service
    can store to resume its own work when a request is retried after a 5xx. Without a key (where it
    is optional) the handler simply runs.
    """
    key = parse_key(request, required=required)
    if key is None:
        return handler("")
    claim = idempotency_claim(client=cast(User, request.user), key=key, fingerprint=request_fingerprint(request))
    if claim.replay is not None:
        status, body = claim.replay
        return Response(body, status=status, headers={REPLAYED_HEADER: "true"})
    try:
        response = handler(f"idem_{claim.row_id}")
    except Exception as exc:  # noqa: BLE001 - every outcome must complete the key; unknown errors are logged
        status, body, headers = envelope_for_exception(exc)
        api_error_count(body["error"]["code"])  # answered here, not by the DRF exception handler
        idempotency_complete(row_id=claim.row_id, status=status, body=body)
        return Response(body, status=status, headers=headers)
    idempotency_complete(row_id=claim.row_id, status=response.status_code, body=response.data)
    return response


# What answering a claimed key writes (one UPDATE, compiled once: config.rows).
ANSWERED_FIELDS = ("response_status", "response_body", "locked_at", "lock_token")


class KeyClaim(Generic[T]):
    """A create request's key, claimed in the service's first transaction and answered in its last.

    The service calls `claim()` inside the transaction that inserts its row (a new key: one INSERT;
    any other case takes the full claim under the key's row lock, and a stored answer raises `Replay`,
    rolling that transaction back), then `answer(result)` inside the transaction that applies the
    gateway's answer, which stores the response with it. Whatever the service did not answer (an
    error, a path without a final transaction) `run_idempotent_service` completes afterwards.
    """

    def __init__(self, *, client: User, key: str, fingerprint: str, render: Callable[[T], tuple[int, Any]]) -> None:
        self.client = client
        self.key = key
        self.fingerprint = fingerprint
        self.render = render
        self._row_id: int | None = None
        self._answered_row: IdempotencyKey | None = None  # the key's row `answer` inserted (its id: once written)
        self.fresh = False
        self.reserved: int | None = None  # the id `claim(reserve=…)` drew
        self.response: tuple[int, Any] | None = None

    @property
    def row_id(self) -> int | None:
        """The key's row: claimed, or inserted with its answer (None until that row is written)."""
        if self._row_id is None and self._answered_row is not None:
            return self._answered_row.pk
        return self._row_id

    @row_id.setter
    def row_id(self, value: int | None) -> None:
        self._row_id = value

    @staticmethod
    def _taken() -> None:
        raise KeyTaken()

    @property
    def reference(self) -> str:
        """What the service stores to find its work again on a retry (`idem_<row id>`)."""
        return f"idem_{self.row_id}" if self.row_id is not None else ""

    def claim(self, *, locks: Sequence[int] = (), reserve: type[Model] | None = None) -> bool:
        """Claim the key inside the caller's transaction; True when it is new (nothing to resume).

        `locks` (advisory locks to hold until the transaction ends) and `reserve` (a model whose next id to
        draw, then in `reserved`) go in the claim's statement (`_insert_new_key`), on PostgreSQL.

        :raises Replay: the request was answered before (the caller's transaction must end: it rolls back).
        :raises IdempotencyKeyReused, IdempotencyKeyInUse: as `idempotency_claim`.
        """
        claim = _claim(client=self.client, key=self.key, fingerprint=self.fingerprint, locks=locks, reserve=reserve)
        if claim.replay is not None:
            raise Replay(*claim.replay)
        self.row_id, self.fresh, self.reserved = claim.row_id, claim.fresh, claim.reserved
        return claim.fresh

    def answer(self, result: T) -> None:
        """Store the response to `result` in the caller's transaction (the one that applies the gateway's answer).

        Without a claim first (a service whose work is one transaction, like a refund's), the key's row is
        inserted, answered, with the transaction's other rows (`config.rows.batched`: no statement of its own;
        `INSERT … ON CONFLICT DO NOTHING`).

        :raises KeyTaken: (no claim first) the key exists: the caller's transaction must end (it rolls back).
            Inside `batched()` it is raised where the batch is written: at the next statement or the block's end.
        """
        response = self.render(result)
        if self.row_id is None:
            now = timezone.now()
            answered_row = IdempotencyKey(
                client=self.client,
                key=self.key,
                fingerprint=self.fingerprint,
                lock_token="",
                locked_at=None,
                created_at=now,
                response_status=response[0],
                response_body=response[1],
            )
            # Inside the caller's `config.rows.batched()`, with its other rows: one statement for them and the key.
            insert_row(answered_row, deferred=True, on_conflict=self._taken)
            self._answered_row = answered_row
        else:
            answered = IdempotencyKey(
                pk=self.row_id, response_status=response[0], response_body=response[1], locked_at=None, lock_token=""
            )
            # with the transaction's other rows when it batches them (the key's row is older than the batch)
            update_row(answered, ANSWERED_FIELDS, where={"id": self.row_id}, deferred=True)
        self.response = response


@idempotency_counted
def run_idempotent_service(
    request: Request,
    *,
    required: bool,
    service: Callable[[KeyClaim[T] | None], T],
    render: Callable[[T], tuple[int, Any]],
) -> Response:
    """Run a service that claims and answers the request's key in its own transactions (see `KeyClaim`)."""
    key = parse_key(request, required=required)
    if key is None:
        status, body = render(service(None))
        return Response(body, status=status)
    claim = KeyClaim(client=cast(User, request.user), key=key, fingerprint=request_fingerprint(request), render=render)
    try:
        try:
            result = service(claim)
        except KeyTaken:  # the key was used before: decide under its lock, then replay or do the work again
            full = idempotency_claim(client=claim.client, key=key, fingerprint=claim.fingerprint)
            if full.replay is not None:
                raise Replay(*full.replay) from None
            claim.row_id = full.row_id
            result = service(claim)
    except Replay as replay:
        return Response(replay.body, status=replay.status, headers={REPLAYED_HEADER: "true"})
    except Exception as exc:  # noqa: BLE001 - every claimed key must be completed; unknown errors are logged
        status, body, headers = envelope_for_exception(exc)
        if claim.row_id is None:
            # The service's transaction rolled back before its key was stored. A concurrent request with
            # this key may have been answered meanwhile (then this one failed only for coming second):
            # decide under the key's lock, like any repeat; a new key is then completed as below.
            full = idempotency_claim(client=claim.client, key=key, fingerprint=claim.fingerprint)
            if full.replay is not None:
                return Response(full.replay[1], status=full.replay[0], headers={REPLAYED_HEADER: "true"})
            claim.row_id = full.row_id
        api_error_count(body["error"]["code"])  # answered here, not by the DRF exception handler
        idempotency_complete(row_id=claim.row_id, status=status, body=body)
        return Response(body, status=status, headers=headers)
    if claim.response is None:
        claim.response = render(result)
        if claim.row_id is not None:
            idempotency_complete(row_id=claim.row_id, status=claim.response[0], body=claim.response[1])
    status, body = claim.response
    return Response(body, status=status)
