"""The API's reads straight from rows: one hand-written statement per request, no model instances.

Retrieve and list run on every storefront poll, so they skip what the ORM costs per request (compiling
the query, building a model per row, Django's Python timestamp loader): each read is one SQL statement
of fixed shape over only the columns the response shows, fetched as tuples and rendered by the plain
functions of `payments/rendering.py`. The lists keep DRF's cursor pagination exactly (the same
cursors, `next`/`previous` links, page sizes and tie handling): `RowCursorPagination` runs DRF's own
code over a `RowQuery`, which answers the three things that code asks of a queryset (an ordering, a
filter on the position, a slice). Writes and the admin keep the ORM.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from django.db import connection
from django.db.models import Field, Model
from rest_framework.exceptions import NotFound
from rest_framework.request import Request

from accounts.models import ApiRole, User
from config.api.pagination import CursorPagination
from config.encryption import EncryptedMixin
from events.selectors import fetch_rows
from payments.models import Payment
from payments.rendering import PAYMENT_FIELDS


def column(model: type[Model], name: str) -> str:
    """`"table"."column"` of the field `name` of `model`, quoted, for a hand-written statement."""
    quote = connection.ops.quote_name
    field = cast(Field, model._meta.get_field(name))
    return f"{quote(model._meta.db_table)}.{quote(cast(str, field.column))}"


def columns(model: type[Model], names: Sequence[str]) -> str:
    return ", ".join(column(model, name) for name in names)


@dataclass(frozen=True)
class RowQuery:
    """A list query over rows ordered by (`created_at`, primary key), newest first unless reversed.

    `select` is `SELECT … FROM …` (with any joins); `where` and `params` its conditions; `created` and
    `key` the two ordering columns; `position` the index of `created_at` in a row. DRF's cursor
    pagination calls `order_by`, `filter` (on `created_at`) and slices it, as it would a queryset.
    """

    select: str
    created: str
    key: str
    position: int
    position_field: Field
    where: tuple[str, ...] = ()
    params: tuple[Any, ...] = ()
    oldest_first: bool = False
    encrypted: tuple[tuple[int, Field], ...] = ()  # (position, field) of the columns stored encrypted

    def matching(self, condition: str, *params: Any) -> "RowQuery":
        return replace(self, where=(*self.where, condition), params=(*self.params, *params))

    def order_by(self, *ordering: str) -> "RowQuery":
        if ordering == ("-created_at", "-id"):
            return replace(self, oldest_first=False)
        if ordering == ("created_at", "id"):
            return replace(self, oldest_first=True)
        raise ValueError(f"RowQuery orders by created_at and id only, not {ordering}")

    def filter(self, **lookup: Any) -> "RowQuery":
        ((name, value),) = lookup.items()
        operator = {"created_at__lt": "<", "created_at__gt": ">"}[name]
        # the cursor's position, parsed (and refused) as the ORM would
        when = self.position_field.get_prep_value(self.position_field.to_python(value))
        return self.matching(f"{self.created} {operator} %s", when)

    def __getitem__(self, window: slice) -> list[tuple[Any, ...]]:
        direction = "ASC" if self.oldest_first else "DESC"
        sql = self.select
        if self.where:
            sql += " WHERE " + " AND ".join(self.where)
        sql += f" ORDER BY {self.created} {direction}, {self.key} {direction} LIMIT %s OFFSET %s"
        start = window.start or 0
        return opened(fetch_rows(sql, (*self.params, window.stop - start, start)), self.encrypted)


def encrypted_positions(model: type[Model], names: Sequence[str]) -> tuple[tuple[int, Field], ...]:
    """Where a row of `names` holds a column encrypted at rest (config.encryption), with its field."""
    fields = [(index, cast(Field, model._meta.get_field(name))) for index, name in enumerate(names)]
    return tuple((index, field) for index, field in fields if isinstance(field, EncryptedMixin))


def opened(rows: list[tuple[Any, ...]], encrypted: Sequence[tuple[int, Field]]) -> list[tuple[Any, ...]]:
    """The rows with their encrypted columns decrypted, as the ORM reads them."""
    if not encrypted:
        return rows
    result = []
    for row in rows:
        values = list(row)
        for index, field in encrypted:
            values[index] = field.from_db_value(values[index], None, connection)  # type: ignore[attr-defined]
        result.append(tuple(values))
    return result


class RowCursorPagination(CursorPagination):
    """DRF's cursor pagination, as configured for the API, over a `RowQuery` (tuples instead of models)."""

    def paginate_rows(self, rows: RowQuery, request: Request, view: Any = None) -> list[tuple[Any, ...]]:
        self._position = rows.position
        return self.paginate_queryset(rows, request, view) or []  # type: ignore[arg-type]

    def _get_position_from_instance(self, instance: Any, ordering: Any) -> str:
        return str(instance[self._position])


# --- payments ---------------------------------------------------------------------------------------
PAYMENT_TABLE = connection.ops.quote_name(Payment._meta.db_table)
PAYMENT_SELECT = f"SELECT {columns(Payment, PAYMENT_FIELDS)} FROM {PAYMENT_TABLE}"  # noqa: S608 - our own names
_PAYMENT = {name: column(Payment, name) for name in ("id", "public_id", "client", "created_at", *PAYMENT_FIELDS)}
_PAYMENT_ENCRYPTED = encrypted_positions(Payment, PAYMENT_FIELDS)  # the customer's e-mail


def payment_row(*, client: User, public_id: str) -> tuple[Any, ...]:
    """One payment as a row of `PAYMENT_FIELDS`; finance clients read any, a storefront its own.

    :raises NotFound: no such payment for this client (another client's payment is 404, never 403).
    """
    sql = f"{PAYMENT_SELECT} WHERE {_PAYMENT['public_id']} = %s"
    params: list[Any] = [public_id]
    if client.api_role != ApiRole.FINANCE:
        sql += f" AND {_PAYMENT['client']} = %s"
        params.append(client.pk)
    rows = opened(fetch_rows(sql + " LIMIT 1", params), _PAYMENT_ENCRYPTED)
    if not rows:
        raise NotFound()
    return rows[0]


def payment_rows(*, client: User, filters: dict[str, Any]) -> RowQuery:
    """The payments a client may list, newest first, narrowed by the list's validated filters.

    `filters` holds the cleaned values of `PaymentFilter` (empty values filter nothing, as there).
    """
    rows = RowQuery(
        select=PAYMENT_SELECT,
        created=_PAYMENT["created_at"],
        key=_PAYMENT["id"],
        position=PAYMENT_FIELDS.index("created_at"),
        position_field=cast(Field, Payment._meta.get_field("created_at")),
        encrypted=_PAYMENT_ENCRYPTED,
    )
    if client.api_role != ApiRole.FINANCE:
        rows = rows.matching(f"{_PAYMENT['client']} = %s", client.pk)
    for name in ("status", "customer_id", "order_id"):
        if filters.get(name):
            rows = rows.matching(f"{_PAYMENT[name]} = %s", filters[name])
    if filters.get("created_gte") is not None:
        rows = rows.matching(f"{_PAYMENT['created_at']} >= %s", filters["created_gte"])
    if filters.get("created_lt") is not None:
        rows = rows.matching(f"{_PAYMENT['created_at']} < %s", filters["created_lt"])
    return rows
