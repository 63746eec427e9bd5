"""Reads of customers and saved methods: a storefront sees only its own (another client's is 404)."""

from django.db.models import OuterRef, QuerySet, Subquery
from rest_framework.exceptions import NotFound

from accounts.models import User
from customers.models import Customer, CustomerGatewayToken, PaymentMethod, PaymentMethodStatus


def _with_reference(customers: QuerySet[Customer], gateway: str) -> QuerySet[Customer]:
    tokens = CustomerGatewayToken.objects.filter(customer=OuterRef("pk"), gateway=gateway)
    return customers.annotate(gateway_reference=Subquery(tokens.values("reference")[:1]))


def customer_get(*, client: User, customer_id: str, gateway: str) -> Customer:
    """This client's customer (not deleted), its default method and gateway reference in one query.

    :raises NotFound: this client has no such customer.
    """
    customers = Customer.objects.filter(client=client, customer_id=customer_id, deleted_at__isnull=True)
    customer = _with_reference(customers.select_related("default_payment_method"), gateway).first()
    if customer is None:
        raise NotFound()
    return customer


def payment_method_list(*, customer: Customer) -> list[PaymentMethod]:
    """The customer's active methods: the default first, then newest (one query)."""
    methods = PaymentMethod.objects.filter(customer=customer, status=PaymentMethodStatus.ACTIVE).order_by(
        "-created_at", "-id"
    )
    listed = list(methods)
    listed.sort(key=lambda method: method.pk != customer.default_payment_method_id)  # stable: newest first after
    return listed


def payment_method_get(*, client: User, public_id: str) -> PaymentMethod:
    """A saved method of one of this client's customers, with its customer.

    :raises NotFound: no such method for this client.
    """
    method = (
        PaymentMethod.objects.select_related("customer").filter(public_id=public_id, customer__client=client).first()
    )
    if method is None:
        raise NotFound()
    return method


def gateway_reference_of(*, customer: Customer, gateway: str) -> str | None:
    return (
        CustomerGatewayToken.objects.filter(customer=customer, gateway=gateway)
        .values_list("reference", flat=True)
        .first()
    )


def customer_by_gateway_reference(*, gateway: str, reference: str) -> Customer | None:
    token = CustomerGatewayToken.objects.select_related("customer").filter(gateway=gateway, reference=reference).first()
    return token.customer if token is not None else None


def customer_token_by_reference(*, reference: str) -> CustomerGatewayToken | None:
    """Our customer's token for a gateway customer id (unique per gateway; ids of different gateways differ)."""
    return CustomerGatewayToken.objects.select_related("customer").filter(reference=reference).first()
