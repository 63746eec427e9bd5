"""Reads of refunds."""

from django.db.models import QuerySet
from rest_framework.exceptions import NotFound

from accounts.models import ApiRole, User
from refunds.models import Refund


def refund_queryset_for(*, client: User) -> QuerySet[Refund]:
    """Finance clients read every refund; a storefront only those of its own payments."""
    refunds = Refund.objects.select_related("payment")
    if client.api_role == ApiRole.FINANCE:
        return refunds
    return refunds.filter(payment__client=client)


def refund_get(*, client: User, public_id: str) -> Refund:
    """:raises NotFound: no such refund for this client."""
    refund = refund_queryset_for(client=client).filter(public_id=public_id).first()
    if refund is None:
        raise NotFound()
    return refund
