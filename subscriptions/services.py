"""Every write to prices, subscriptions and invoices, in atomic phases.

A gateway call never runs inside a transaction: the customer (and a new saved card) is made first through
the customers services, then the gateway's billing engine is called with a key derived from our ids or the
request's claimed Idempotency-Key, then its answer is applied under the subscription's row lock, with history
and events, in one transaction. An invoice's charge is a `pay_` payment (`payments.services
.payment_record_for_invoice`), recorded from the intent read at the gateway, outside any transaction.

The same `subscription_apply` / `invoice_apply` take the gateway's answers to our calls and the objects of
its webhooks: each object is stored once (unique gateway reference) and news older than what we hold (an
earlier period, a status the state machine cannot reach from ours) changes nothing.
"""

import logging
import secrets
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar, cast

from django.core.cache import cache
from django.db import IntegrityError, transaction

from accounts.models import User
from audit.services import staff_action_record
from customers.models import Customer, PaymentMethod, PaymentMethodStatus
from customers.selectors import customer_token_by_reference
from customers.services import customer_ensure, customer_gateway_reference, payment_method_attach
from gateways import get_gateway
from gateways.base import Declined, Gateway, GatewayTimeout, Permanent, Retryable
from gateways.billing import BillingGateway, InvoiceResult, PriceResult, SubscriptionResult
from payments.errors import CardDeclined, GatewayTimeoutError, GatewayUnavailableError
from payments.models import ChangeSource, Payment
from payments.services import payment_record_for_invoice
from subscriptions import states
from subscriptions.errors import ParameterInvalid, SubscriptionUnexpectedState
from subscriptions.locks import lock_invoice, lock_subscription
from subscriptions.models import Invoice, InvoiceLine, Price, Product, Subscription
from subscriptions.states import InvoiceStatus, SubscriptionStatus
from subscriptions.status import (
    invoice_event,
    subscription_event,
    subscription_status_change,
    subscription_status_initial,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")
S = SubscriptionStatus
INVOICE_PAYMENT_TASK = "subscriptions.tasks.sync_invoice_payment"
SUBSCRIPTION_SYNC_TASK = "subscriptions.tasks.sync_subscription"
CATALOG_SYNC_KEY = "subscriptions:catalog-synced"
CATALOG_SYNC_SECONDS = 60


class _Billing(Gateway, BillingGateway, Protocol):
    """A gateway with its billing engine (both adapters implement the two protocols)."""


def billing_gateway(name: str | None = None) -> _Billing:
    return cast(_Billing, get_gateway(name))


def clock_of(client: User) -> str:
    """The simulator's billing clock of an API client (Stripe's adapter ignores it)."""
    return f"client:{client.pk}"


def gateway_call(request: Callable[[], T]) -> T:
    """One billing call, its failures as API errors.

    :raises ParameterInvalid: the gateway refused the request (an unknown or inactive price): 400.
    :raises CardDeclined: a decline (402).
    :raises GatewayTimeoutError, GatewayUnavailableError: no answer (502); repeating with the same key is safe.
    """
    try:
        return request()
    except Declined as exc:
        raise CardDeclined(exc.message, code=exc.code or CardDeclined.default_code) from exc
    except GatewayTimeout as exc:
        raise GatewayTimeoutError() from exc
    except Retryable as exc:
        raise GatewayUnavailableError() from exc
    except Permanent as exc:
        if exc.code == "subscription_unexpected_state":
            raise SubscriptionUnexpectedState(exc.message) from exc
        raise ParameterInvalid(exc.message) from exc


# --- prices ---------------------------------------------------------------------------------------
def price_record(*, result: PriceResult, gateway_name: str) -> tuple[Price, bool]:
    """Upsert a gateway price (and its product). Returns (price, changed)."""
    with transaction.atomic():
        product, _ = Product.objects.get_or_create(
            gateway=gateway_name, reference=result.product_reference, defaults={"name": result.product_name}
        )
        if product.name != result.product_name:
            product.name = result.product_name
            product.save(update_fields=["name", "updated_at"])
        fields = {
            "product": product,
            "unit_amount": result.unit_amount,
            "currency": result.currency.lower(),
            "interval": result.interval,
            "interval_count": result.interval_count,
            "trial_period_days": result.trial_period_days,
            "active": result.active,
        }
        price = Price.objects.select_for_update().filter(gateway=gateway_name, reference=result.reference).first()
        if price is None:
            return Price.objects.create(gateway=gateway_name, reference=result.reference, **fields), True
        changed = [name for name, value in fields.items() if getattr(price, name) != value]
        for name in changed:
            setattr(price, name, fields[name])
        if changed:
            price.save(update_fields=[*changed, "updated_at"])
        return price, bool(changed)


def prices_sync(*, progress: Callable[[int], None] | None = None) -> tuple[int, int]:
    """Mirror every price of the gateway's catalog. Returns (seen, changed)."""
    gateway = billing_gateway()
    seen = changed = 0
    for result in gateway.list_prices():
        _, moved = price_record(result=result, gateway_name=gateway.name)
        seen += 1
        changed += int(moved)
        if progress is not None:
            progress(seen)
    return seen, changed


# --- applying the gateway's news ----------------------------------------------------------------------
def _method_of(customer: Customer, reference: str) -> PaymentMethod | None:
    if not reference:
        return None
    return PaymentMethod.objects.filter(customer=customer, gateway_reference=reference).first()


def _subscription_fields(result: SubscriptionResult, customer: Customer, price: Price) -> dict[str, Any]:
    return {
        "price": price,
        "quantity": result.quantity,
        "trial_start": result.trial_start,
        "trial_end": result.trial_end,
        "current_period_start": result.current_period_start,
        "current_period_end": result.current_period_end,
        "cancel_at_period_end": result.cancel_at_period_end,
        "canceled_at": result.canceled_at,
        "default_payment_method": _method_of(customer, result.default_payment_method),
    }


def _is_stale(subscription: Subscription, result: SubscriptionResult) -> bool:
    """News older than what we hold: a status that ended, an earlier period, a status ours cannot lead to."""
    if result.status != subscription.status and not states.can_transition(subscription.status, result.status):
        return True
    return result.current_period_start < subscription.current_period_start


def subscription_apply(
    *,
    result: SubscriptionResult,
    gateway_name: str,
    source: str,
    customer: Customer | None = None,
    metadata: dict[str, str] | None = None,
    actor: User | None = None,
    reason: str = "",
    latest_invoice_reference: str = "",
) -> tuple[Subscription | None, bool]:
    """Store what the gateway says about a subscription (insert once, or move ours forward). Returns (row, moved).

    None when the subscription is not ours (an unknown customer or price). The latest invoice, when the answer
    carries it, is applied first.
    """
    existing = Subscription.objects.filter(gateway_reference=result.reference).values_list("pk", flat=True).first()
    invoice = None
    if result.latest_invoice is not None and existing is not None:
        invoice = invoice_apply(result=result.latest_invoice, gateway_name=gateway_name, source=source)
    elif latest_invoice_reference:
        invoice = Invoice.objects.filter(gateway_reference=latest_invoice_reference).first()
    if existing is None:
        created = _subscription_insert(
            result=result, gateway_name=gateway_name, source=source, customer=customer, metadata=metadata
        )
        if created is None:
            return None, False
        if result.latest_invoice is not None:
            invoice = invoice_apply(result=result.latest_invoice, gateway_name=gateway_name, source=source)
        if invoice is not None:
            Subscription.objects.filter(pk=created.pk).update(latest_invoice=invoice)
        return Subscription.objects.get(pk=created.pk), True
    with transaction.atomic():
        subscription = lock_subscription(existing)
        if _is_stale(subscription, result):
            return subscription, False
        fields = _subscription_fields(result, subscription.customer, subscription.price)
        price = Price.objects.filter(gateway=gateway_name, reference=result.price_reference).first()
        fields["price"] = price or subscription.price
        if invoice is not None:
            fields["latest_invoice"] = invoice
        if metadata is not None:
            fields["metadata"] = metadata
        changed = {name: value for name, value in fields.items() if getattr(subscription, name) != value}
        if not changed and result.status == subscription.status:
            return subscription, False
        subscription_status_change(
            subscription, result.status, source=source, actor=actor, reason=reason, fields=changed
        )
    return subscription, True


def _subscription_insert(
    *,
    result: SubscriptionResult,
    gateway_name: str,
    source: str,
    customer: Customer | None,
    metadata: dict[str, str] | None,
) -> Subscription | None:
    if customer is None:
        token = customer_token_by_reference(reference=result.customer_reference)
        if token is None:
            return None
        customer = token.customer
    price = Price.objects.filter(gateway=gateway_name, reference=result.price_reference).first()
    if price is None:
        return None
    try:
        with transaction.atomic():
            subscription = Subscription.objects.create(
                client_id=customer.client_id,
                customer=customer,
                status=result.status,
                gateway=gateway_name,
                gateway_reference=result.reference,
                metadata=metadata if metadata is not None else result.metadata,
                gateway_created_at=result.created_at,
                **_subscription_fields(result, customer, price),
            )
            subscription_status_initial(subscription, source=source)
    except IntegrityError:  # a concurrent delivery stored it first
        return Subscription.objects.get(gateway_reference=result.reference)
    logger.info("Subscription recorded", extra={"subscription": subscription.public_id, "via": source})
    return subscription


def _invoice_fields(result: InvoiceResult) -> dict[str, Any]:
    return {
        "status": result.status,
        "currency": result.currency,
        "amount_due": result.amount_due,
        "amount_paid": result.amount_paid,
        "amount_remaining": result.amount_remaining,
        "attempt_count": result.attempt_count,
        "next_payment_attempt": result.next_payment_attempt,
        "period_start": result.period_start,
        "period_end": result.period_end,
        "hosted_invoice_url": result.hosted_invoice_url,
        "payment_intent_reference": result.payment_intent_reference,
        "failure_code": result.failure_code,
    }


def _lines(invoice: Invoice, result: InvoiceResult) -> None:
    InvoiceLine.objects.filter(invoice=invoice).delete()
    InvoiceLine.objects.bulk_create(
        InvoiceLine(
            invoice=invoice,
            description=line.description[:500],
            amount=line.amount,
            quantity=line.quantity,
            price_reference=line.price_reference,
            period_start=line.period_start,
            period_end=line.period_end,
        )
        for line in result.lines
    )


def invoice_apply(*, result: InvoiceResult, gateway_name: str, source: str) -> Invoice | None:
    """Store what the gateway says about an invoice (see `invoice_record`); the invoice, or None when not ours."""
    return invoice_record(result=result, gateway_name=gateway_name, source=source)[0]


def invoice_record(*, result: InvoiceResult, gateway_name: str, source: str) -> tuple[Invoice | None, bool]:
    """Store what the gateway says about an invoice: inserted once (with `invoice.created`), then forward only.

    `invoice.paid` is written when it becomes paid, `invoice.payment_failed` when an attempt failed (its
    attempt count grew, unpaid). Returns (invoice, moved); None when it is not ours (no subscription or customer
    of ours).
    """
    existing = Invoice.objects.filter(gateway_reference=result.reference).values_list("pk", flat=True).first()
    if existing is None:
        inserted = _invoice_insert(result=result, gateway_name=gateway_name, source=source)
        return inserted, inserted is not None
    with transaction.atomic():
        invoice = lock_invoice(existing)
        moved = _invoice_update(invoice, result)
    if moved:
        logger.info("Invoice updated", extra={"invoice": invoice.public_id, "status": invoice.status, "via": source})
    return invoice, moved


def _invoice_update(invoice: Invoice, result: InvoiceResult) -> bool:
    same = result.status == invoice.status
    if not same and not states.invoice_can_transition(invoice.status, result.status):
        return False  # stale: paid and void are for good
    if same and result.attempt_count < invoice.attempt_count:
        return False
    fields = _invoice_fields(result)
    if not fields["payment_intent_reference"]:
        del fields["payment_intent_reference"]
    changed = [name for name, value in fields.items() if getattr(invoice, name) != value]
    if not changed:
        return False
    before_status, before_attempts = invoice.status, invoice.attempt_count
    for name in changed:
        setattr(invoice, name, fields[name])
    invoice.save(update_fields=[*changed, "updated_at"])
    if result.lines:
        _lines(invoice, result)
    if invoice.status == InvoiceStatus.PAID and before_status != InvoiceStatus.PAID:
        invoice_event(invoice, "invoice.paid")
    elif invoice.attempt_count > before_attempts and invoice.status != InvoiceStatus.PAID:
        invoice_event(invoice, "invoice.payment_failed")
    return True


def _invoice_insert(*, result: InvoiceResult, gateway_name: str, source: str) -> Invoice | None:
    subscription = (
        Subscription.objects.select_related("latest_invoice")
        .filter(gateway_reference=result.subscription_reference)
        .first()
        if result.subscription_reference
        else None
    )
    if subscription is not None:
        customer = subscription.customer
    else:
        token = customer_token_by_reference(reference=result.customer_reference)
        if token is None:
            return None
        customer = token.customer
    try:
        with transaction.atomic():
            invoice = Invoice.objects.create(
                client_id=customer.client_id,
                subscription=subscription,
                customer=customer,
                gateway=gateway_name,
                gateway_reference=result.reference,
                gateway_created_at=result.created_at,
                **_invoice_fields(result),
            )
            _lines(invoice, result)
            if subscription is not None:
                _newest_invoice(subscription, invoice)
            invoice_event(invoice, "invoice.created")
            if invoice.status == InvoiceStatus.PAID:
                invoice_event(invoice, "invoice.paid")
            elif invoice.attempt_count > 0:
                invoice_event(invoice, "invoice.payment_failed")
    except IntegrityError:
        return Invoice.objects.get(gateway_reference=result.reference)
    logger.info("Invoice recorded", extra={"invoice": invoice.public_id, "via": source})
    return invoice


def _newest_invoice(subscription: Subscription, invoice: Invoice) -> None:
    """Point the subscription at a new invoice unless it already names a newer one (a late invoice.created)."""
    latest = subscription.latest_invoice
    if latest is not None and (latest.gateway_created_at or latest.created_at) > (
        invoice.gateway_created_at or invoice.created_at
    ):
        return
    Subscription.objects.filter(pk=subscription.pk).update(latest_invoice=invoice)


def invoice_needs_payment(invoice: Invoice) -> bool:
    """An attempted invoice whose charge is not (yet) the payment we hold."""
    attempted = invoice.status == InvoiceStatus.PAID or invoice.attempt_count > 0
    return bool(invoice.payment_intent_reference) and attempted


def invoice_payment_sync(*, invoice_id: int, source: str = ChangeSource.WEBHOOK) -> Payment | None:
    """Record the invoice's charge as a `pay_` payment (once per intent), from the intent read at the gateway.

    Runs outside any transaction (it calls the gateway). Returns the payment, or None when nothing was charged.
    """
    invoice = Invoice.objects.select_related("customer", "client").get(pk=invoice_id)
    if not invoice_needs_payment(invoice):
        return None
    intent = get_gateway(invoice.gateway).retrieve_intent(reference=invoice.payment_intent_reference)
    payment = payment_record_for_invoice(
        client=invoice.client,
        customer_id=invoice.customer.customer_id,
        intent=intent,
        invoice_id=invoice.public_id,
        source=source,
        final=invoice.status in {InvoiceStatus.UNCOLLECTIBLE, InvoiceStatus.VOID},  # no attempt after these
    )
    if invoice.payment_id != payment.pk:
        Invoice.objects.filter(pk=invoice.pk).update(payment=payment)
    return payment


def subscription_sync(*, gateway_name: str, reference: str) -> bool:
    """Make our subscription what the gateway says it is now (for news of the same period, whose order the
    objects cannot tell). Returns whether it moved."""
    if not Subscription.objects.filter(gateway_reference=reference).exists():
        return False
    result = billing_gateway(gateway_name).retrieve_subscription(reference=reference)
    _, moved = subscription_apply(result=result, gateway_name=gateway_name, source=ChangeSource.WEBHOOK)
    return moved


def _settle_invoices(invoices: Iterable[Invoice | None], source: str) -> None:
    for invoice in invoices:
        if invoice is not None and invoice_needs_payment(invoice):
            invoice_payment_sync(invoice_id=invoice.pk, source=source)


# --- the API's operations -------------------------------------------------------------------------------
def _payment_method(*, client: User, customer: Customer, payment_method: str) -> PaymentMethod | None:
    """The saved method to charge: a `pmt_…` of this customer, or a `pm_…` token attached first.

    :raises ParameterInvalid: a `pmt_…` that is not an active method of this customer.
    """
    if not payment_method:
        return customer.default_payment_method
    if payment_method.startswith("pmt_"):
        method = PaymentMethod.objects.filter(
            public_id=payment_method, customer=customer, status=PaymentMethodStatus.ACTIVE
        ).first()
        if method is None:
            raise ParameterInvalid(
                "payment_method is not an active saved method of this customer.", param="payment_method"
            )
        return method
    _, method = payment_method_attach(client=client, customer_id=customer.customer_id, payment_method=payment_method)
    return method


def price_for_subscription(reference: str) -> Price:
    """An active price of the catalog; a price not mirrored yet has the catalog synced first (at most once a
    minute, whatever is asked: an unknown id never costs more than that).

    :raises ParameterInvalid: an unknown or inactive price (400).
    """
    gateway = get_gateway().name
    price = Price.objects.filter(gateway=gateway, reference=reference, active=True).first()
    unknown = price is None and not Price.objects.filter(gateway=gateway, reference=reference).exists()
    if unknown and cache.add(CATALOG_SYNC_KEY, True, CATALOG_SYNC_SECONDS):
        prices_sync()
        price = Price.objects.filter(gateway=gateway, reference=reference, active=True).first()
    if price is None:
        raise ParameterInvalid("price is not an active price of the catalog.", param="price")
    return price


def subscription_create(
    *,
    client: User,
    customer_id: str,
    price: str,
    quantity: int = 1,
    payment_method: str = "",
    trial_days: int | None = None,
    metadata: dict[str, str] | None = None,
    request_reference: str = "",
) -> Subscription:
    """Subscribe this client's customer (made here and at the gateway when needed) to a price.

    Without a trial the first invoice is charged at once; a decline leaves the subscription `incomplete`
    (stored, with its invoice and payment) and raises CardDeclined (402).
    """
    gateway = billing_gateway()
    chosen = price_for_subscription(price)
    customer, _ = customer_ensure(client=client, customer_id=customer_id)
    customer_reference = customer_gateway_reference(customer=customer)
    customer.refresh_from_db()
    method = _payment_method(client=client, customer=customer, payment_method=payment_method)
    key = f"{request_reference or secrets.token_hex(12)}:subscription:create"
    result = gateway_call(
        lambda: gateway.create_subscription(
            customer_reference=customer_reference,
            price_reference=chosen.reference,
            quantity=quantity,
            default_payment_method=method.gateway_reference if method is not None else "",
            trial_days=trial_days,
            metadata={"client_customer_id": customer.customer_id},
            idempotency_key=key,
            test_clock=clock_of(client),
        )
    )
    subscription, _ = subscription_apply(
        result=result,
        gateway_name=gateway.name,
        source=ChangeSource.API,
        customer=customer,
        metadata=metadata or {},
    )
    if subscription is None:  # the gateway answered with another price than asked: not ours to keep
        raise ParameterInvalid("price is not an active price of the catalog.", param="price")
    subscription = Subscription.objects.select_related("latest_invoice").get(pk=subscription.pk)
    _settle_invoices([subscription.latest_invoice], ChangeSource.API)
    latest = result.latest_invoice
    if result.status == S.INCOMPLETE and latest is not None and latest.failure_code:
        raise CardDeclined(
            f"The first invoice's payment failed; subscription {subscription.public_id} is incomplete.",
            code=latest.failure_code,
        )
    return subscription


def subscription_update(
    *, subscription: Subscription, changes: dict[str, Any], request_reference: str = ""
) -> Subscription:
    """Change the price, quantity, payment method or metadata (at the gateway first, with its proration).

    :raises SubscriptionUnexpectedState: the subscription has ended (409).
    """
    if subscription.status in states.TERMINAL:
        raise SubscriptionUnexpectedState(f"A {subscription.status} subscription cannot be changed.")
    gateway = billing_gateway(subscription.gateway)
    new_price = price_for_subscription(changes["price"]) if "price" in changes else None
    if new_price is not None and new_price.currency != subscription.price.currency:
        raise ParameterInvalid(
            f"price must be in the subscription's currency ({subscription.price.currency}).", param="price"
        )
    price = new_price.reference if new_price is not None else None
    method = (
        _payment_method(
            client=subscription.client, customer=subscription.customer, payment_method=changes["payment_method"]
        )
        if changes.get("payment_method")
        else None
    )
    metadata = changes.get("metadata")
    if price is None and "quantity" not in changes and method is None:
        if metadata is None:
            return subscription
        with transaction.atomic():
            locked = lock_subscription(subscription.pk)
            if locked.metadata != metadata:
                locked.metadata = metadata
                locked.save(update_fields=["metadata", "updated_at"])
                subscription_event(locked, "subscription.updated")
        return locked
    key = f"{subscription.public_id}:update:{request_reference or secrets.token_hex(12)}"
    result = gateway_call(
        lambda: gateway.update_subscription(
            reference=subscription.gateway_reference,
            price_reference=price,
            quantity=changes.get("quantity"),
            default_payment_method=method.gateway_reference if method is not None else None,
            metadata=None,
            idempotency_key=key,
        )
    )
    applied, _ = subscription_apply(
        result=result, gateway_name=gateway.name, source=ChangeSource.API, metadata=metadata
    )
    assert applied is not None  # noqa: S101 - it is ours: we hold it
    refreshed = Subscription.objects.select_related("latest_invoice").get(pk=applied.pk)
    _settle_invoices([refreshed.latest_invoice], ChangeSource.API)
    return refreshed


def subscription_cancel(
    *,
    subscription: Subscription,
    at_period_end: bool = False,
    source: str = ChangeSource.API,
    actor: User | None = None,
    reason: str = "",
    remote_addr: str | None = None,
) -> Subscription:
    """Cancel now, or at the end of the period (it stays active with `cancel_at_period_end`).

    Staff (`actor`) must give a reason, kept in the staff log.

    :raises SubscriptionUnexpectedState: it is canceled (or expired) already (409).
    :raises ValueError: a staff cancel without a reason.
    """
    if actor is not None and not reason.strip():
        raise ValueError("A staff cancel needs a reason.")
    if subscription.status in states.TERMINAL:
        raise SubscriptionUnexpectedState(f"The subscription is {subscription.status} already.")
    gateway = billing_gateway(subscription.gateway)
    mode = "period_end" if at_period_end else "now"
    result = gateway_call(
        lambda: gateway.cancel_subscription(
            reference=subscription.gateway_reference,
            at_period_end=at_period_end,
            idempotency_key=f"{subscription.public_id}:cancel:{mode}",
        )
    )
    before = {"status": subscription.status, "cancel_at_period_end": subscription.cancel_at_period_end}
    with transaction.atomic():
        applied, _ = subscription_apply(
            result=result, gateway_name=gateway.name, source=source, actor=actor, reason=reason
        )
        assert applied is not None  # noqa: S101 - it is ours: we hold it
        if actor is not None:
            staff_action_record(
                actor=actor,
                action="cancel_subscription",
                object_type="subscription",
                object_id=subscription.public_id,
                reason=reason,
                before=before,
                after={"status": applied.status, "cancel_at_period_end": applied.cancel_at_period_end},
                remote_addr=remote_addr,
            )
    return Subscription.objects.get(pk=applied.pk)
