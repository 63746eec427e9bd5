"""Reads of disputes: a storefront sees the disputes of its own payments (another's is 404), finance all."""

from typing import Any

from django.db.models import QuerySet
from rest_framework.exceptions import NotFound

from accounts.models import ApiRole, User
from disputes.models import Dispute


def dispute_queryset_for(*, client: User) -> QuerySet[Dispute]:
    rows = Dispute.objects.select_related("payment")
    return rows if client.api_role == ApiRole.FINANCE else rows.filter(client=client)


def dispute_get(*, client: User, public_id: str) -> Dispute:
    """:raises NotFound: no such dispute for this client."""
    dispute = dispute_queryset_for(client=client).filter(public_id=public_id).first()
    if dispute is None:
        raise NotFound()
    return dispute


def dispute_list(*, client: User, filters: dict[str, Any]) -> QuerySet[Dispute]:
    rows = dispute_queryset_for(client=client)
    if filters.get("payment"):
        rows = rows.filter(payment__public_id=filters["payment"])
    if filters.get("status"):
        rows = rows.filter(status=filters["status"])
    return rows
