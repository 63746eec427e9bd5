"""API idempotency keys (IETF `Idempotency-Key` draft, Stripe's behaviour).

A key is claimed with an `INSERT … ON CONFLICT DO NOTHING` followed by a row lock, so concurrent
requests with one key never both do the work (no check-then-act). What is stored and replayed:
responses of requests that did work (2xx, 402, 409 state errors). Requests rejected before any
work (4xx) free the key; 5xx keep the fingerprint but release the lock, so the client may retry
with the same key and the service finishes what it had started.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from django.conf import settings
from django.db import transaction
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
from payments.locks import lock_idempotency_key
from payments.models import IdempotencyKey


@dataclass(frozen=True)
class Claim:
    """Either a stored response to replay, or a lock on the key to do the work under."""

    row_id: int
    replay: tuple[int, Any] | None = None


def idempotency_claim(*, client: User, key: str, fingerprint: str) -> Claim:
    """Claim the key for this request, or return the stored response to replay.

    :raises IdempotencyKeyReused: the key belongs to a different request (422).
    :raises IdempotencyKeyInUse: the first request with this key is still running (409).
    """
    token = uuid.uuid4().hex
    now = timezone.now()
    with transaction.atomic():
        IdempotencyKey.objects.bulk_create(
            [
                IdempotencyKey(
                    client=client, key=key, fingerprint=fingerprint, lock_token=token, locked_at=now, created_at=now
                )
            ],
            ignore_conflicts=True,
        )
        row = lock_idempotency_key(client=client, key=key)
        if row.lock_token == token:
            return Claim(row_id=row.pk)
        if row.created_at < now - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS):
            # Expired: a new row (new id), so nothing keyed by the old one is resumed by mistake.
            row.delete()
            fresh = IdempotencyKey.objects.create(
                client=client, key=key, fingerprint=fingerprint, lock_token=token, locked_at=now, created_at=now
            )
            return Claim(row_id=fresh.pk)
        if row.fingerprint != fingerprint:
            raise IdempotencyKeyReused()
        if row.response_status is not None:
            return Claim(row_id=row.pk, replay=(row.response_status, row.response_body))
        lock_expired = row.locked_at is None or row.locked_at < now - timedelta(
            seconds=settings.IDEMPOTENCY_LOCK_TIMEOUT_SECONDS
        )
        if not lock_expired:
            raise IdempotencyKeyInUse()
        row.lock_token = token
        row.locked_at = now
        row.save(update_fields=["lock_token", "locked_at"])
        return Claim(row_id=row.pk)


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
        idempotency_complete(row_id=claim.row_id, status=status, body=body)
        return Response(body, status=status, headers=headers)
    idempotency_complete(row_id=claim.row_id, status=response.status_code, body=response.data)
    return response
