"""Staff's writes to invoices and prices in the back office: retry an open invoice now, mark one uncollectible
(above the approval limit only on a second person's approval), create a price at the gateway.

Each is the atomic phases of the house: checks, then the gateway call outside any transaction with a key
derived from our ids, then its answer applied through the services that apply the webhooks' news
(`invoice_record`, `invoice_payment_sync`, `subscription_apply`), then the staff log.
"""

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.db import transaction

from accounts.models import User
from audit.approvals import ApprovalOutcome
from audit.models import ApprovalRequest, StaffAction
from audit.services import approval_followup, approval_request_create, staff_action_record
from config.api.errors import ApplicationError
from gateways.base import GatewayError, Permanent
from payments.models import ChangeSource
from payments.money import MAX_AMOUNT, format_amount, get_currency, is_supported
from subscriptions.errors import ParameterInvalid
from subscriptions.models import INTERVALS, Invoice, Price
from subscriptions.services import (
    billing_gateway,
    gateway_call,
    invoice_payment_sync,
    invoice_record,
    price_record,
    subscription_apply,
)
from subscriptions.states import InvoiceStatus

logger = logging.getLogger(__name__)
T = TypeVar("T")
MARK_UNCOLLECTIBLE_KIND = "invoice_mark_uncollectible"
INTERVAL_NAMES = frozenset(name for name, _ in INTERVALS)
MAX_INTERVAL_COUNT = 365  # Stripe: at most a year's worth of the interval (365 days, 52 weeks, 12 months, 1 year)
MAX_TRIAL_DAYS = 730  # Stripe's limit


class InvoiceNotOpen(ApplicationError):
    status_code = 409
    error_type = "state_error"
    default_code = "invoice_not_open"
    default_message = "Only an open invoice can be retried or marked uncollectible."


def approval_limit(*, currency: str) -> int:
    """The largest amount (minor units) staff may write off without a second person: the refund approval limit.

    Read from the setting the refunds app reads (`BACKOFFICE_REFUND_APPROVAL_LIMIT`): subscriptions may not
    import refunds (pyproject.toml's import contracts).
    """
    limits: dict[str, int] = settings.BACKOFFICE_REFUND_APPROVAL_LIMIT
    return limits.get(currency.lower(), limits["default"])


def _billing_call(request: Callable[[], T]) -> T:
    """One billing call (see `services.gateway_call`), the gateway's "not open" as our 409."""

    def guarded() -> T:
        try:
            return request()
        except Permanent as exc:
            if exc.code == "invoice_not_open":
                raise InvoiceNotOpen(exc.message) from exc
            raise

    return gateway_call(guarded)


def _check_open(invoice: Invoice) -> None:
    if invoice.status != InvoiceStatus.OPEN:
        raise InvoiceNotOpen(f"Invoice {invoice.public_id} is {invoice.status}; only an open invoice can be changed.")


def _snapshot(invoice: Invoice) -> dict[str, Any]:
    return {
        "status": invoice.status,
        "amount_remaining": invoice.amount_remaining,
        "currency": invoice.currency,
        "attempt_count": invoice.attempt_count,
        "failure_code": invoice.failure_code,
        "payment": invoice.payment.public_id if invoice.payment is not None else "",
        "payment_status": invoice.payment.status if invoice.payment is not None else "",
    }


def _reloaded(invoice_id: int) -> Invoice:
    return Invoice.objects.select_related("payment", "subscription").get(pk=invoice_id)


def _subscription_follow(invoice: Invoice, *, actor: User, reason: str) -> None:
    """Make the invoice's subscription what the gateway says now (a paid retry ends past_due or incomplete)."""
    if invoice.subscription is None:
        return
    gateway = billing_gateway(invoice.gateway)
    try:
        result = gateway.retrieve_subscription(reference=invoice.subscription.gateway_reference)
    except GatewayError:
        # The invoice is applied; the subscription's own webhook (or reconciliation) brings it up to date.
        logger.warning("Subscription not read after a staff retry", extra={"invoice": invoice.public_id})
        return
    subscription_apply(result=result, gateway_name=gateway.name, source=ChangeSource.ADMIN, actor=actor, reason=reason)


# --- retry ----------------------------------------------------------------------------------------------
def invoice_retry(*, invoice: Invoice, actor: User, reason: str, remote_addr: str | None = None) -> Invoice:
    """Attempt an open invoice at the gateway now; its answer (paid, or still open with the decline's code) is
    applied as the webhooks' is, its payment updated, the subscription brought up to date, and the staff log
    written. A decline does not raise: the returned invoice is open with its `failure_code`.

    The key is the invoice's id and the attempt count we hold, so a double submit attempts once.

    :raises ValueError: the reason is empty.
    :raises InvoiceNotOpen: the invoice is not open (here or at the gateway) (409).
    :raises GatewayTimeoutError, GatewayUnavailableError: no answer (502); nothing recorded here.
    """
    if not reason.strip():
        raise ValueError("A staff retry needs a reason.")
    invoice = _reloaded(invoice.pk)
    _check_open(invoice)
    before = _snapshot(invoice)
    gateway = billing_gateway(invoice.gateway)
    key = f"{invoice.public_id}:pay:{invoice.attempt_count}"
    result = _billing_call(lambda: gateway.pay_invoice(reference=invoice.gateway_reference, idempotency_key=key))
    invoice_record(result=result, gateway_name=gateway.name, source=ChangeSource.ADMIN)
    invoice_payment_sync(invoice_id=invoice.pk, source=ChangeSource.ADMIN)
    _subscription_follow(invoice, actor=actor, reason=reason)
    done = _reloaded(invoice.pk)
    staff_action_record(
        actor=actor,
        action="retry_invoice",
        object_type="invoice",
        object_id=done.public_id,
        reason=reason,
        before=before,
        after=_snapshot(done),
        remote_addr=remote_addr,
    )
    logger.info("Invoice retried by staff", extra={"invoice": done.public_id, "status": done.status})
    return done


# --- mark uncollectible ------------------------------------------------------------------------------------
def invoice_mark_uncollectible(
    *, invoice: Invoice, actor: User, reason: str, remote_addr: str | None = None
) -> Invoice | ApprovalRequest:
    """Write an open invoice off: at once when what is left to pay is within the currency's approval limit,
    otherwise an approval request that a second staff member must approve (returned as such).

    :raises ValueError: the reason is empty.
    :raises InvoiceNotOpen: the invoice is not open (409).
    :raises GatewayTimeoutError, GatewayUnavailableError: no answer (502).
    """
    if not reason.strip():
        raise ValueError("Marking an invoice uncollectible needs a reason.")
    invoice = _reloaded(invoice.pk)
    _check_open(invoice)
    if invoice.amount_remaining > approval_limit(currency=invoice.currency):
        return approval_request_create(
            kind=MARK_UNCOLLECTIBLE_KIND,
            object_type="invoice",
            object_id=invoice.public_id,
            params={"amount_remaining": invoice.amount_remaining, "currency": invoice.currency},
            reason=reason,
            requested_by=actor,
            remote_addr=remote_addr,
        )
    return _mark_uncollectible(invoice_id=invoice.pk, actor=actor, reason=reason, remote_addr=remote_addr)


def _mark_uncollectible(
    *, invoice_id: int, actor: User, reason: str, remote_addr: str | None, approval_request: int | None = None
) -> Invoice:
    """The gateway call (key: the invoice's id, so a repeat marks once) and its answer applied: the invoice
    uncollectible, its declined payment failed (no attempt follows), the staff log written."""
    invoice = _reloaded(invoice_id)
    _check_open(invoice)
    before = _snapshot(invoice)
    gateway = billing_gateway(invoice.gateway)
    key = f"{invoice.public_id}:mark_uncollectible"
    result = _billing_call(
        lambda: gateway.mark_invoice_uncollectible(reference=invoice.gateway_reference, idempotency_key=key)
    )
    invoice_record(result=result, gateway_name=gateway.name, source=ChangeSource.ADMIN)
    invoice_payment_sync(invoice_id=invoice.pk, source=ChangeSource.ADMIN)
    done = _reloaded(invoice.pk)
    after = _snapshot(done)
    if approval_request is not None:
        after["approval_request"] = approval_request
    staff_action_record(
        actor=actor,
        action="mark_invoice_uncollectible",
        object_type="invoice",
        object_id=done.public_id,
        reason=reason,
        before=before,
        after=after,
        remote_addr=remote_addr,
    )
    logger.info("Invoice marked uncollectible by staff", extra={"invoice": done.public_id, "status": done.status})
    return done


def run_approved_mark_uncollectible(request: ApprovalRequest, approver: User) -> ApprovalOutcome:
    """The approval kind `invoice_mark_uncollectible`.

    The approval runs its kind inside a transaction, and no transaction is held across a gateway call: the
    invoice is checked here (a request for an invoice no longer open fails), and the gateway is called right
    after the approval commits (`transaction.on_commit`), its outcome in the staff log.

    :raises InvoiceNotOpen: the invoice was paid, voided or written off meanwhile.
    :raises ParameterInvalid: the invoice's currency is not the request's.
    """
    invoice = Invoice.objects.get(public_id=request.object_id)
    _check_open(invoice)
    if invoice.currency != request.params["currency"]:
        raise ParameterInvalid("The request's currency is not the invoice's.", param="currency")
    approval_followup(
        work=lambda: _mark_uncollectible(
            invoice_id=invoice.pk,
            actor=approver,
            reason=request.reason,
            remote_addr=None,
            approval_request=request.pk,
        ),
        failures=(ApplicationError, GatewayError),
        approver=approver,
        action="mark_invoice_uncollectible",
        object_type="invoice",
        object_id=invoice.public_id,
        reason=request.reason,
        approval_request=request.pk,
    )
    return ApprovalOutcome(
        result=f"invoice {invoice.public_id} sent to the gateway to be marked uncollectible",
        before={"status": invoice.status, "amount_remaining": invoice.amount_remaining},
        after={"status": "uncollectible (at the gateway, after approval)"},
    )


def summarize_mark_uncollectible(params: dict[str, Any]) -> str:
    return f"mark uncollectible ({format_amount(params['amount_remaining'], params['currency'])} unpaid)"


# --- prices ---------------------------------------------------------------------------------------------------
def price_create(
    *,
    actor: User,
    product_name: str,
    unit_amount: int,
    currency: str,
    interval: str,
    interval_count: int = 1,
    trial_period_days: int | None = None,
    form_token: str,
    remote_addr: str | None = None,
) -> Price:
    """Create a product with one recurring price at the gateway and mirror it here, audited.

    `unit_amount` is in minor units. The key is the form's token, so a double submit makes one price.

    :raises ParameterInvalid: an unsupported currency, an amount the currency cannot hold, a bad interval (400).
    :raises GatewayTimeoutError, GatewayUnavailableError: no answer (502); the same token is safe to repeat.
    """
    currency = currency.lower()
    name = product_name.strip()
    if not name:
        raise ParameterInvalid("A product name is required.", param="product_name")
    if not is_supported(currency):
        raise ParameterInvalid(f"{currency.upper()} is not a supported currency.", param="currency")
    step = get_currency(currency).step
    if not 0 <= unit_amount <= MAX_AMOUNT or unit_amount % step:
        raise ParameterInvalid(f"unit_amount is not an amount {currency.upper()} can charge.", param="unit_amount")
    if interval not in INTERVAL_NAMES or not 1 <= interval_count <= MAX_INTERVAL_COUNT:
        raise ParameterInvalid("interval or interval_count is invalid.", param="interval")
    if trial_period_days is not None and not 0 <= trial_period_days <= MAX_TRIAL_DAYS:
        raise ParameterInvalid("trial_period_days is invalid.", param="trial_period_days")
    if not form_token:
        raise ParameterInvalid("The form's token is missing.", param="form_token")
    gateway = billing_gateway()
    result = _billing_call(
        lambda: gateway.create_price(
            product_name=name,
            unit_amount=unit_amount,
            currency=currency,
            interval=interval,
            interval_count=interval_count,
            trial_period_days=trial_period_days,
            idempotency_key=f"price:{form_token}:create",
        )
    )
    with transaction.atomic():
        price, _ = price_record(result=result, gateway_name=gateway.name)
        seen = StaffAction.objects.filter(action="create_price", object_type="price", object_id=price.reference)
        if seen.exists():  # a double submit: the gateway answered the same price again
            return price
        staff_action_record(
            actor=actor,
            action="create_price",
            object_type="price",
            object_id=price.reference,
            reason=f"New price for {name}",
            after={
                "product": result.product_reference,
                "unit_amount": price.unit_amount,
                "currency": price.currency,
                "interval": price.interval,
                "interval_count": price.interval_count,
                "trial_period_days": price.trial_period_days,
            },
            remote_addr=remote_addr,
        )
    logger.info("Price created by staff", extra={"price": price.reference})
    return price
