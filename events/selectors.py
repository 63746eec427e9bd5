"""Reads of the event log: the feed a client follows with `after=`, and the rows a replay republishes."""

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from django.db import connection
from django.db.models import Field, QuerySet
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.types.datetime import TimestamptzLoader  # the C one (psycopg[binary]); Django's is Python
from rest_framework.exceptions import ErrorDetail, ValidationError

from accounts.models import ApiRole, User
from events.db import OwnTransactionId, SnapshotXmin
from events.models import Event

_decode = json.JSONDecoder().decode


def visible_to(client: User) -> QuerySet[Event]:
    """Finance clients read every event; a storefront only those of its own objects."""
    if client.api_role == ApiRole.FINANCE:
        return Event.objects.all()
    return Event.objects.filter(client=client)


class JsonbLoader(Loader):
    """`jsonb` (text format) to Python, sparing the parser the empty object and list of most columns."""

    def load(self, data: Buffer) -> Any:
        if data == b"{}":
            return {}
        if data == b"[]":
            return []
        return _decode(bytes(data).decode())


def fetch_rows(sql: str, params: Sequence[Any], *, parse_jsonb: bool = True) -> list[tuple[Any, ...]]:
    """Run one hand-written read; its rows as tuples, `jsonb` parsed (or left as text), `timestamptz`
    aware in UTC.

    The values the ORM gives (the connection's time zone is UTC) without its cost per query and per
    row: no compiling, no model instances, psycopg's C timestamp loader instead of Django's Python one.
    The event feed and the payment and refund reads (payments/reads.py) use it; events is the lowest
    app they share.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            adapters = cursor.cursor.adapters  # this cursor's own copy: the connection's stay as they are
            adapters.register_loader("timestamptz", TimestamptzLoader)
            if parse_jsonb:
                adapters.register_loader("jsonb", JsonbLoader)
        cursor.execute(sql, params)
        return cursor.fetchall()


# What a feed row holds, in order (`data` last): what `events.api.render_event_row` renders.
FEED_FIELDS = ("public_id", "type", "created_at", "sequence", "schema_version", "subject_type", "subject_id", "data")


def _column(name: str, alias: str = "") -> str:
    quote = connection.ops.quote_name
    field = cast(Field, Event._meta.get_field(name))
    return f"{quote(alias or Event._meta.db_table)}.{quote(cast(str, field.column))}"


_TABLE = connection.ops.quote_name(Event._meta.db_table)
_FEED_SELECT = f"SELECT {', '.join(_column(name) for name in FEED_FIELDS)} FROM {_TABLE}"  # noqa: S608 - our names
_CLIENT, _TYPE, _SUBJECT = _column("client"), _column("type"), _column("subject_id")
_TRANSACTION, _SEQUENCE = _column("transaction_id"), _column("sequence")
# Rows of a transaction that may still be running (id at or above the snapshot's xmin) are held back;
# a transaction always sees its own. The first condition is the same rule as a range of the feed
# index, so PostgreSQL walks the index in feed order and stops after a page; the second is exact.
_XMIN, _OWN = SnapshotXmin.template, OwnTransactionId.template
_VISIBLE = (
    f"{_TRANSACTION} < GREATEST({_XMIN}, COALESCE({_OWN}, 0) + 1)"
    f" AND ({_TRANSACTION} < {_XMIN} OR {_TRANSACTION} = {_OWN})"
)
_POSITION = (  # where the event `after` sits in the feed
    f"SELECT {_column('transaction_id', 'a')}, {_column('sequence', 'a')} FROM {_TABLE} AS a "  # noqa: S608
    f"WHERE {_column('public_id', 'a')} = %s"
)
_POSITION_OF_CLIENT = f"{_POSITION} AND {_column('client', 'a')} = %s"


def event_page(
    *, client: User, after: str | None, limit: int, event_type: str | None = None, subject_id: str | None = None
) -> list[tuple[Any, ...]]:
    """The next `limit` events of the client's feed after the event `after` (an `evt_` id), as rows of
    `FEED_FIELDS`: one statement (two when a page after `after` comes back empty).

    Feed order: sequence numbers are handed out before commit, so ordering by sequence alone could
    show event 11 while event 10's transaction is still open and then skip 10. The feed therefore
    holds back every row written by a transaction that may still be running (transaction id at or
    above the snapshot's xmin) and orders by (transaction id, sequence): rows that become visible
    later always sort after everything already shown, so `after=` never skips one. Finance clients
    read every event; a storefront only those of its own objects.

    :raises ValidationError: `after` names no event this client can see.
    """
    storefront = client.api_role != ApiRole.FINANCE
    where: list[str] = []
    params: list[Any] = []
    if storefront:
        where.append(f"{_CLIENT} = %s")
        params.append(client.pk)
    if event_type:
        where.append(f"{_TYPE} = %s")
        params.append(event_type)
    if subject_id:
        where.append(f"{_SUBJECT} = %s")
        params.append(subject_id)
    if connection.vendor == "postgresql":
        where.append(_VISIBLE)
    if after:
        where.append(f"({_TRANSACTION}, {_SEQUENCE}) > ({_POSITION_OF_CLIENT if storefront else _POSITION})")
        params += [after, client.pk] if storefront else [after]
    sql = _FEED_SELECT + (" WHERE " + " AND ".join(where) if where else "")
    rows = fetch_rows(f"{sql} ORDER BY {_TRANSACTION}, {_SEQUENCE} LIMIT %s", [*params, limit], parse_jsonb=False)
    if after and not rows and not visible_to(client).filter(public_id=after).exists():
        raise ValidationError({"after": [ErrorDetail("No such event.", code="resource_missing")]})
    # the page's `data` in one parse (a third faster than a parse per row); JSON text joins into an array
    data = _decode("[" + ",".join(row[-1] for row in rows) + "]")
    return [(*row[:-1], value) for row, value in zip(rows, data, strict=True)]


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
