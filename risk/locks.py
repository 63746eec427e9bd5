"""Locks of the risk app: identity locks for exact velocity counts, and rows staff change."""

import hashlib
from typing import TypeVar

from django.db import connection, models

from accounts.models import User
from risk.models import BlocklistEntry

M = TypeVar("M", bound=models.Model)


def _lock_key(*parts: object) -> int:
    digest = hashlib.blake2b(":".join(str(part) for part in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def identity_lock_keys(*, client: User, customer_id: str, email: str, ip: str | None) -> tuple[int, ...]:
    """The advisory lock keys of a creation's customer, e-mail and IP, in key order (PostgreSQL; elsewhere none)."""
    if connection.vendor != "postgresql":
        return ()
    keys = [_lock_key("risk", "customer", client.pk, customer_id)]
    if email:
        keys.append(_lock_key("risk", "email", email))
    if ip:
        keys.append(_lock_key("risk", "ip", ip))
    return tuple(sorted(set(keys)))


def lock_identities(*, client: User, customer_id: str, email: str, ip: str | None) -> None:
    """Serialize creations that share a customer, an e-mail or an IP until the creating transaction ends.

    Counting and inserting under these locks is what keeps the velocity counts exact when many web
    processes create payments at once: the next creation counts this one. Locks are taken in key
    order, so two creations sharing two identities cannot deadlock. SQLite serializes writers anyway.
    (A create through the API takes the same keys in its idempotency key's statement instead: `identity_lock_keys`.)
    """
    keys = identity_lock_keys(client=client, customer_id=customer_id, email=email, ip=ip)
    if not keys:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(key) FROM (SELECT unnest(%s::bigint[]) AS key ORDER BY 1) AS ordered",
            [list(keys)],
        )


def lock_blocklist_entry(entry_id: int) -> BlocklistEntry:
    return BlocklistEntry.objects.select_for_update().get(pk=entry_id)


def lock_stored(obj: M) -> M | None:
    """The stored row of a settings object staff are changing, locked (None: not stored yet)."""
    return type(obj)._default_manager.select_for_update().filter(pk=obj.pk).first()
