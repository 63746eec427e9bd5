"""Reads of privacy: which rows belong to a customer, and the export of everything held about one.

A customer here is a storefront's customer (`customers.Customer`); its payments are the storefront's payments
with that `customer_id` (some may predate the customer row), and everything else hangs from those.
"""

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q
from django.utils import timezone
from rest_framework.exceptions import NotFound

from accounts.models import User
from audit.models import StaffAction
from config.api.rendering import iso
from customers.models import Customer, CustomerGatewayToken, PaymentMethod
from customers.rendering import render_customer
from disputes.models import Dispute
from disputes.rendering import render_dispute
from events.models import Event
from payments.models import Payment
from payments.rendering import render_payment
from privacy.models import CustomerErasure
from refunds.models import Refund
from refunds.rendering import render_refund
from subscriptions.models import Invoice, Subscription
from subscriptions.rendering import render_invoice, render_subscription


def customer_find(*, client: User, customer_id: str) -> Customer:
    """This storefront client's customer, erased or not.

    :raises NotFound: it has none.
    """
    customer = Customer.objects.select_related("client", "default_payment_method").filter(
        client=client, customer_id=customer_id
    )
    found = customer.first()
    if found is None:
        raise NotFound()
    return found


def customer_is_erased(customer: Customer) -> bool:
    """Erased and not made again since (a PUT after an erasure makes the customer anew; it can be erased again)."""
    if customer.deleted_at is None:
        return False
    return CustomerErasure.objects.filter(customer=customer, erased_at__gte=customer.deleted_at).exists()


def customer_find_erasable(*, client: User, customer_id: str) -> Customer:
    """:raises NotFound: no such customer, or erased already (the contract's second DELETE is 404)."""
    customer = customer_find(client=client, customer_id=customer_id)
    if customer_is_erased(customer):
        raise NotFound()
    return customer


@dataclass
class CustomerRows:
    """The customer's rows, by kind (ids and primary keys only, so they can be read again under locks)."""

    customer: Customer
    payment_pks: list[int] = field(default_factory=list)
    payment_ids: list[str] = field(default_factory=list)
    refund_pks: list[int] = field(default_factory=list)
    refund_ids: list[str] = field(default_factory=list)
    method_pks: list[int] = field(default_factory=list)
    method_ids: list[str] = field(default_factory=list)
    subscription_pks: list[int] = field(default_factory=list)
    subscription_ids: list[str] = field(default_factory=list)
    invoice_pks: list[int] = field(default_factory=list)
    invoice_ids: list[str] = field(default_factory=list)
    dispute_pks: list[int] = field(default_factory=list)
    dispute_ids: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)  # the gateway's ids of all of them

    def subjects(self) -> dict[str, list[str]]:
        """Our public ids by the object type the staff log and events name them with."""
        return {
            "customer": [self.customer.public_id],
            "payment": self.payment_ids,
            "refund": self.refund_ids,
            "payment_method": self.method_ids,
            "subscription": self.subscription_ids,
            "invoice": self.invoice_ids,
            "dispute": self.dispute_ids,
        }

    def public_ids(self) -> list[str]:
        return [public_id for ids in self.subjects().values() for public_id in ids]


def customer_rows(*, customer: Customer) -> CustomerRows:
    """Every row of the customer, a handful of queries whatever their number."""
    rows = CustomerRows(customer=customer)
    references: set[str | None] = set(
        CustomerGatewayToken.objects.filter(customer=customer).values_list("reference", flat=True)
    )
    payments = Payment.objects.filter(client_id=customer.client_id, customer_id=customer.customer_id)
    for pk, public_id, *refs in payments.values_list(
        "pk", "public_id", "gateway_reference", "gateway_customer", "gateway_payment_method", "dispute_reference"
    ):
        rows.payment_pks.append(pk)
        rows.payment_ids.append(public_id)
        references.update(refs)
    for pk, public_id, reference in Refund.objects.filter(payment_id__in=rows.payment_pks).values_list(
        "pk", "public_id", "gateway_reference"
    ):
        rows.refund_pks.append(pk)
        rows.refund_ids.append(public_id)
        references.add(reference or "")
    for pk, public_id, reference in PaymentMethod.objects.filter(customer=customer).values_list(
        "pk", "public_id", "gateway_reference"
    ):
        rows.method_pks.append(pk)
        rows.method_ids.append(public_id)
        references.add(reference)
    for pk, public_id, reference in Subscription.objects.filter(customer=customer).values_list(
        "pk", "public_id", "gateway_reference"
    ):
        rows.subscription_pks.append(pk)
        rows.subscription_ids.append(public_id)
        references.add(reference)
    for pk, public_id, reference, intent in Invoice.objects.filter(customer=customer).values_list(
        "pk", "public_id", "gateway_reference", "payment_intent_reference"
    ):
        rows.invoice_pks.append(pk)
        rows.invoice_ids.append(public_id)
        references.update((reference, intent))
    for pk, public_id, reference, charge in Dispute.objects.filter(payment_id__in=rows.payment_pks).values_list(
        "pk", "public_id", "gateway_reference", "charge_reference"
    ):
        rows.dispute_pks.append(pk)
        rows.dispute_ids.append(public_id)
        references.update((reference, charge))
    # A gateway id short enough to occur inside another would match bodies it is not in: ids are long.
    rows.references = sorted(reference for reference in references if reference and len(reference) >= 8)
    return rows


def _staff_actions(rows: CustomerRows) -> Q:
    match = Q(pk__in=[])
    for object_type, ids in rows.subjects().items():
        if ids:
            match |= Q(object_type=object_type, object_id__in=ids)
    return match


def staff_actions_of(rows: CustomerRows) -> Any:
    return StaffAction.objects.filter(_staff_actions(rows))


def events_of(rows: CustomerRows) -> Any:
    return Event.objects.filter(subject_id__in=rows.public_ids())


def _method(method: PaymentMethod) -> dict[str, Any]:
    return {
        "id": method.public_id,
        "object": "payment_method",
        "card": {
            "brand": method.brand,
            "last4": method.last4,
            "exp_month": method.exp_month,
            "exp_year": method.exp_year,
        },
        "status": method.status,
        "created": iso(method.created_at),
        "detached": iso(method.detached_at),
    }


def _payment(payment: Payment) -> dict[str, Any]:
    shown = render_payment(payment)
    shown.pop("client_secret", None)  # a credential, not data about the customer
    shown["customer_ip"] = payment.customer_ip
    return shown


def customer_export(*, client: User, customer_id: str) -> dict[str, Any]:
    """Everything held about the customer, as JSON: personal fields in clear (the right of access).

    :raises NotFound: this storefront client has no such customer.
    """
    customer = customer_find(client=client, customer_id=customer_id)
    rows = customer_rows(customer=customer)
    reference = (
        CustomerGatewayToken.objects.filter(customer=customer).order_by("gateway").values_list("gateway", "reference")
    ).first()
    shown_customer = render_customer(
        customer, gateway=reference[0] if reference else "", gateway_reference=reference[1] if reference else None
    )
    shown_customer["deleted"] = iso(customer.deleted_at)
    payments = Payment.objects.filter(pk__in=rows.payment_pks).order_by("created_at", "id")
    refunds = Refund.objects.select_related("payment").filter(pk__in=rows.refund_pks).order_by("created_at", "id")
    subscriptions = (
        Subscription.objects.select_related("customer", "price", "default_payment_method", "latest_invoice")
        .filter(pk__in=rows.subscription_pks)
        .order_by("created_at", "id")
    )
    invoices = (
        Invoice.objects.select_related("customer", "subscription", "payment")
        .prefetch_related("lines")
        .filter(pk__in=rows.invoice_pks)
        .order_by("created_at", "id")
    )
    disputes = Dispute.objects.select_related("payment").filter(pk__in=rows.dispute_pks).order_by("created_at", "id")
    events = events_of(rows).order_by("sequence")
    actions = staff_actions_of(rows).order_by("id")
    return {
        "object": "customer_export",
        "exported_at": iso(timezone.now()),
        "customer": shown_customer,
        "payment_methods": [
            _method(method) for method in PaymentMethod.objects.filter(pk__in=rows.method_pks).order_by("created_at")
        ],
        "payments": [_payment(payment) for payment in payments],
        "refunds": [render_refund(refund) for refund in refunds],
        "subscriptions": [render_subscription(subscription) for subscription in subscriptions],
        "invoices": [render_invoice(invoice) for invoice in invoices],
        "disputes": [render_dispute(dispute) for dispute in disputes],
        "events": [
            {
                "id": event.public_id,
                "type": event.type,
                "subject": event.subject_id,
                "created": iso(event.created_at),
                "data": event.data,
            }
            for event in events
        ],
        "staff_actions": [
            {
                "action": action.action,
                "object_type": action.object_type,
                "object_id": action.object_id,
                "reason": action.reason,
                "before": action.before,
                "after": action.after,
                "created": iso(action.created_at),
            }
            for action in actions
        ],
        "erasures": [
            {"erased": iso(erasure.erased_at), "source": erasure.source}
            for erasure in CustomerErasure.objects.filter(customer=customer).order_by("erased_at")
        ],
    }
