"""The refund API's reads straight from rows (as payments/reads.py does for payments): one statement
of fixed shape over the columns a refund's JSON shows, its payment's id joined in, no model instances."""

from collections.abc import Sequence
from typing import Any, cast

from django.db import connection
from django.db.models import Field
from rest_framework.exceptions import NotFound

from accounts.models import ApiRole, User
from config.api.rendering import iso
from payments.models import Payment
from payments.reads import RowQuery, column, columns, fetch_rows
from refunds.models import Refund

# What a refund's JSON shows, in the order of a row: its payment's `public_id` comes second.
REFUND_FIELDS = ("public_id", "amount", "currency", "status", "reason", "failure_reason", "metadata")
REFUND_TIMES = ("created_at", "updated_at")

_quote = connection.ops.quote_name
_SELECTED = ", ".join(
    (column(Refund, "public_id"), column(Payment, "public_id"), columns(Refund, (*REFUND_FIELDS[1:], *REFUND_TIMES)))
)
_JOIN = f"JOIN {_quote(Payment._meta.db_table)} ON {column(Payment, 'id')} = {column(Refund, 'payment')}"
REFUND_SELECT = f"SELECT {_SELECTED} FROM {_quote(Refund._meta.db_table)} {_JOIN}"  # noqa: S608 - our own names


def render_refund_row(row: Sequence[Any]) -> dict[str, Any]:
    """A refund from a row of `REFUND_SELECT`: the shape of `refunds.rendering.render_refund`."""
    public_id, payment, amount, currency, status, reason, failure_reason, metadata, created_at, updated_at = row
    return {
        "id": public_id,
        "object": "refund",
        "payment": payment,
        "amount": amount,
        "currency": currency,
        "status": status,
        "reason": reason or None,
        "failure_reason": failure_reason or None,
        "metadata": metadata,
        "created": iso(created_at),
        "updated": iso(updated_at),
    }


def refund_row(*, client: User, public_id: str) -> tuple[Any, ...]:
    """:raises NotFound: no such refund for this client (finance clients read all, a storefront its own)."""
    sql = f"{REFUND_SELECT} WHERE {column(Refund, 'public_id')} = %s"
    params: list[Any] = [public_id]
    if client.api_role != ApiRole.FINANCE:
        sql += f" AND {column(Payment, 'client')} = %s"
        params.append(client.pk)
    rows = fetch_rows(sql + " LIMIT 1", params)
    if not rows:
        raise NotFound()
    return rows[0]


def refund_rows(*, client: User, filters: dict[str, Any], payment_id: str | None = None) -> RowQuery:
    """The refunds a client may list (of one payment, by its `pay_` id, if given), newest first,
    narrowed by the cleaned values of `RefundFilter` (empty values filter nothing)."""
    created = column(Refund, "created_at")
    rows = RowQuery(
        select=REFUND_SELECT,
        created=created,
        key=column(Refund, "id"),
        position=1 + len(REFUND_FIELDS),
        position_field=cast(Field, Refund._meta.get_field("created_at")),
    )
    if client.api_role != ApiRole.FINANCE:
        rows = rows.matching(f"{column(Payment, 'client')} = %s", client.pk)
    if payment_id is not None:
        rows = rows.matching(f"{column(Payment, 'public_id')} = %s", payment_id)
    if filters.get("status"):
        rows = rows.matching(f"{column(Refund, 'status')} = %s", filters["status"])
    if filters.get("created_gte") is not None:
        rows = rows.matching(f"{created} >= %s", filters["created_gte"])
    if filters.get("created_lt") is not None:
        rows = rows.matching(f"{created} < %s", filters["created_lt"])
    return rows
