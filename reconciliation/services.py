"""Reconciliation services: compare the gateway's records for a window with ours in bulk; staff close discrepancies.

The gateway's intents are streamed in batches; each batch is matched against our payments with one
query. Our payments the gateway never listed are found at the end by streaming ours once against a
bitmap of the payment ids that were matched (one bit per id in the window's id range), so memory
stays small at millions of rows. Only safe corrections are applied, through the payments services.
Customers' saved payment methods are a second pass of the same run (`reconciliation.payment_methods`), the
window's subscriptions and their invoices a third (`reconciliation.subscriptions`), the window's disputes a fourth
(`reconciliation.disputes`).
"""

import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, cast

from django.db import transaction
from django.db.models import Count, Max, Min
from django.utils import timezone

from accounts.models import User
from audit.services import staff_action_record
from gateways import get_gateway
from gateways.base import Gateway, IntentResult
from gateways.billing import BillingGateway
from gateways.disputes import DisputeGateway
from payments import services as payment_services
from payments import states
from payments.models import ChangeSource, Payment
from reconciliation.disputes import DISPUTE_BATCH_SIZE, DisputeReconciler
from reconciliation.errors import DiscrepancyNotOpen, ReasonRequired
from reconciliation.locks import lock_discrepancy
from reconciliation.models import (
    Discrepancy,
    DiscrepancyKind,
    DiscrepancyState,
    ReconciliationRun,
    RunScope,
    RunStatus,
)
from reconciliation.payment_methods import CUSTOMER_BATCH_SIZE, PaymentMethodReconciler
from reconciliation.subscriptions import SUBSCRIPTION_BATCH_SIZE, SubscriptionReconciler

K = DiscrepancyKind

BATCH_SIZE = 2000
_PAYMENT_FIELDS = ("id", "public_id", "gateway_reference", "amount", "currency", "status")
_COMPARED_FIELDS = (*_PAYMENT_FIELDS, "amount_received", "amount_refunded")

Progress = Callable[[int, int], None]  # (gateway records compared so far, our payments in the window)


# --- comparing ------------------------------------------------------------------------------------
def _intent_values(intent: IntentResult) -> dict[str, Any]:
    return {
        "amount": intent.amount,
        "currency": intent.currency,
        "status": intent.status,
        "amount_received": intent.amount_received,
    }


def compare(
    row: dict[str, Any], intent: IntentResult, refunded: int
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """The differences between one of our payments (`.values()` row) and the gateway's intent."""
    found: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    if row["currency"] != intent.currency:
        found.append((K.CURRENCY, {"currency": row["currency"]}, {"currency": intent.currency}))
    if row["amount"] != intent.amount:
        found.append(
            (
                K.AMOUNT,
                {"amount": row["amount"], "currency": row["currency"]},
                {"amount": intent.amount, "currency": intent.currency},
            )
        )
    # both sides named alike (payments.states): refunds are ours to track, a declined attempt is our `failed`
    ours = states.as_gateway_names(row["status"])
    theirs = states.from_gateway_status(intent.status, failure_code=intent.failure_code)
    if ours != theirs:
        found.append((K.STATUS, {"status": row["status"]}, {"status": intent.status}))
    elif row["amount_received"] != intent.amount_received:  # a status difference already explains this one
        found.append(
            (
                K.CAPTURED,
                {"amount_received": row["amount_received"], "currency": row["currency"]},
                {"amount_received": intent.amount_received, "currency": intent.currency},
            )
        )
    if row["amount_refunded"] != refunded:
        found.append(
            (
                K.REFUNDED,
                {"amount_refunded": row["amount_refunded"], "currency": row["currency"]},
                {"amount_refunded": refunded, "currency": intent.currency},
            )
        )
    return found


def _batched(items: Iterable[IntentResult], size: int) -> Iterator[list[IntentResult]]:
    batch: list[IntentResult] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _IdBitmap:
    """One bit per payment id in [low, high]: which of our payments the gateway listed."""

    def __init__(self, low: int | None, high: int | None) -> None:
        self.low = low or 0
        self.high = high if high is not None else -1
        self.bits = bytearray((self.high - self.low) // 8 + 1 if self.high >= self.low else 0)

    def add(self, payment_id: int) -> None:
        if self.low <= payment_id <= self.high:
            offset = payment_id - self.low
            self.bits[offset >> 3] |= 1 << (offset & 7)

    def __contains__(self, payment_id: int) -> bool:
        if not self.low <= payment_id <= self.high:
            return False
        offset = payment_id - self.low
        return bool(self.bits[offset >> 3] & (1 << (offset & 7)))


class _Reconciler:
    def __init__(
        self, run: ReconciliationRun, gateway: Gateway, *, fix: bool, progress: Progress | None, batch_size: int
    ) -> None:
        self.run = run
        self.gateway = gateway
        self.fix = fix
        self.progress = progress
        self.batch_size = batch_size
        self.ours = Payment.objects.filter(
            gateway=gateway.name,
            gateway_reference__isnull=False,
            created_at__gte=run.window_start,
            created_at__lt=run.window_end,
        )
        self.seen = _IdBitmap(None, None)
        self.refunded: dict[str, int] = {}

    def execute(self) -> None:
        run = self.run
        bounds = self.ours.aggregate(n=Count("id"), low=Min("id"), high=Max("id"))
        run.our_records = bounds["n"]
        self.seen = _IdBitmap(bounds["low"], bounds["high"])
        self.refunded = self._gateway_refunds()
        intents = self.gateway.list_intents(created_gte=run.window_start, created_lt=run.window_end)
        for batch in _batched(intents, self.batch_size):
            self._compare_batch(batch)
            run.gateway_records += len(batch)
            if self.progress:
                self.progress(run.gateway_records, run.our_records)
        self._find_missing_at_gateway()

    def _gateway_refunds(self) -> dict[str, int]:
        """Succeeded refunds per intent, for every refund since the window opened (refunds come later)."""
        totals: defaultdict[str, int] = defaultdict(int)
        for refund in self.gateway.list_refunds(created_gte=self.run.window_start, created_lt=timezone.now()):
            if refund.status == "succeeded":
                totals[refund.intent_reference] += refund.amount
        return dict(totals)

    def _compare_batch(self, batch: list[IntentResult]) -> None:
        run = self.run
        rows = {
            row["gateway_reference"]: row
            for row in Payment.objects.filter(gateway_reference__in=[intent.reference for intent in batch]).values(
                *_COMPARED_FIELDS
            )
        }
        found: list[Discrepancy] = []
        fixable: list[tuple[Discrepancy, IntentResult]] = []
        for intent in batch:
            row = rows.get(intent.reference)
            if row is None:
                found.append(
                    Discrepancy(
                        run=run, kind=K.MISSING_HERE, gateway_reference=intent.reference, theirs=_intent_values(intent)
                    )
                )
                continue
            self.seen.add(row["id"])
            differences = compare(row, intent, self.refunded.get(intent.reference, 0))
            if not differences:
                run.matched += 1
            for kind, ours, theirs in differences:
                discrepancy = Discrepancy(
                    run=run,
                    kind=kind,
                    payment_id=row["id"],
                    gateway_reference=intent.reference,
                    ours=ours,
                    theirs=theirs,
                )
                found.append(discrepancy)
                if (
                    self.fix
                    and kind == K.STATUS
                    and states.is_safe_to_fix(row["status"], intent.status, failure_code=intent.failure_code)
                ):
                    fixable.append((discrepancy, intent))
        # Fixes run before the rows are written, so a fixed discrepancy is stored fixed (never a bulk
        # UPDATE of audited rows afterwards); each fix is in the payment's status history (source worker).
        for discrepancy, intent in fixable:
            if self._apply_fix(discrepancy, intent):
                discrepancy.state = DiscrepancyState.FIXED
                run.discrepancies_fixed += 1
        if found:
            Discrepancy.objects.bulk_create(found)
            run.discrepancies_found += len(found)

    def _apply_fix(self, discrepancy: Discrepancy, intent: IntentResult) -> bool:
        """Move the payment forward to the gateway's state through the payments service."""
        assert discrepancy.payment_id is not None  # noqa: S101 - set for every status discrepancy
        payment = payment_services.payment_apply_intent(
            payment_id=discrepancy.payment_id, intent=intent, source=ChangeSource.WORKER
        )
        return states.as_gateway_names(payment.status) == states.from_gateway_status(
            intent.status, failure_code=intent.failure_code
        )

    def _find_missing_at_gateway(self) -> None:
        """Stream our payments of the window once; those whose bit is not set were never listed."""
        run = self.run
        pending: list[Discrepancy] = []
        rows = self.ours.order_by().values_list(*_PAYMENT_FIELDS).iterator(chunk_size=self.batch_size)
        for payment_id, public_id, reference, amount, currency, status in rows:
            if payment_id in self.seen:
                continue
            ours = {"id": public_id, "amount": amount, "currency": currency, "status": status}
            pending.append(
                Discrepancy(
                    run=run, kind=K.MISSING_AT_GATEWAY, payment_id=payment_id, gateway_reference=reference, ours=ours
                )
            )
            if len(pending) >= self.batch_size:
                Discrepancy.objects.bulk_create(pending)
                run.discrepancies_found += len(pending)
                pending = []
        if pending:
            Discrepancy.objects.bulk_create(pending)
            run.discrepancies_found += len(pending)


def reconcile(
    *,
    since: datetime,
    until: datetime,
    fix: bool = False,
    gateway: Gateway | None = None,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
    scope: str = RunScope.ALL,
    methods_progress: Progress | None = None,
    customer_batch_size: int = CUSTOMER_BATCH_SIZE,
    subscriptions_progress: Progress | None = None,
    subscription_batch_size: int = SUBSCRIPTION_BATCH_SIZE,
    disputes_progress: Progress | None = None,
    dispute_batch_size: int = DISPUTE_BATCH_SIZE,
) -> ReconciliationRun:
    """Compare the gateway's intents created in [since, until) with our payments, every gateway customer's
    attached card methods with our saved methods (as they are now, whatever the window), and the gateway's
    subscriptions created in [since, until) and their invoices with ours, and the gateway's disputes created in
    [since, until) with ours; record one run.

    `scope` runs the four passes (`all`), or only `payments`, `payment_methods`, `subscriptions` or `disputes`.
    With `fix`, a payment we still show waiting (processing, requires_action, requires_capture) that
    the gateway shows further on is moved forward through `payment_apply_intent`; a method attached at the
    gateway is saved here, and an active method the gateway shows attached to nobody is detached here
    (both through the customers services); a subscription or invoice the gateway shows otherwise (or that we
    lack) is made what the gateway says through `subscription_apply` / `invoice_record` (forward moves only);
    a dispute whose status differs (or that we lack) is applied through `dispute_apply` (forward moves only);
    every other difference stays open for staff.
    `progress(done, expected)` is called after each batch of intents, `methods_progress` after each batch of
    customers, `subscriptions_progress` after each batch of gateway subscriptions, `disputes_progress` after each
    batch of gateway disputes.

    :raises GatewayError: the gateway could not be listed (the run is stored as failed).
    """
    gateway = gateway or get_gateway()
    covered = RunScope(scope)
    run = ReconciliationRun.objects.create(
        gateway=gateway.name, window_start=since, window_end=until, fix=fix, scope=covered
    )
    started = time.monotonic()
    try:
        if covered.covers_payments:
            _Reconciler(run, gateway, fix=fix, progress=progress, batch_size=batch_size).execute()
        if covered.covers_payment_methods:
            PaymentMethodReconciler(
                run, gateway, fix=fix, progress=methods_progress, batch_size=customer_batch_size
            ).execute()
        if covered.covers_subscriptions:
            # both gateways implement the billing protocol beside `Gateway` (`subscriptions.services._Billing`)
            SubscriptionReconciler(
                run,
                cast(BillingGateway, gateway),
                fix=fix,
                progress=subscriptions_progress,
                batch_size=subscription_batch_size,
            ).execute()
        if covered.covers_disputes:
            # both gateways implement the disputes protocol beside `Gateway` (`disputes.services.dispute_gateway`)
            DisputeReconciler(
                run, cast(DisputeGateway, gateway), fix=fix, progress=disputes_progress, batch_size=dispute_batch_size
            ).execute()
        still_open = run.discrepancies_found - run.discrepancies_fixed
        run.status = RunStatus.CLEAN if still_open == 0 else RunStatus.UNRESOLVED
    finally:
        if run.status == RunStatus.RUNNING:  # the exception propagates unchanged; the run records it
            error = sys.exc_info()[1]
            run.status = RunStatus.FAILED
            run.error = f"{type(error).__name__}: {error}"[:2000]
        _finish(run, started)
    return run


def _finish(run: ReconciliationRun, started: float) -> None:
    run.finished_at = timezone.now()
    run.duration_seconds = round(time.monotonic() - started, 3)
    run.save()


# --- staff closing discrepancies ------------------------------------------------------------------
def discrepancy_close(*, discrepancy_id: int, actor: User, reason: str, accept: bool = False) -> Discrepancy:
    """Close an open discrepancy as resolved by staff (or, with `accept`, accepted as it is), with a reason.

    The run becomes clean once none of its discrepancies is open.

    :raises ReasonRequired: the reason is blank.
    :raises DiscrepancyNotOpen: it was already fixed, resolved or accepted.
    """
    reason = reason.strip()
    if not reason:
        raise ReasonRequired()
    with transaction.atomic():
        discrepancy = lock_discrepancy(discrepancy_id)
        if discrepancy.state != DiscrepancyState.OPEN:
            raise DiscrepancyNotOpen()
        before = {"state": discrepancy.state}
        discrepancy.state = DiscrepancyState.ACCEPTED if accept else DiscrepancyState.RESOLVED
        discrepancy.resolved_by = actor
        discrepancy.resolved_at = timezone.now()
        discrepancy.note = reason
        discrepancy.save(update_fields=["state", "resolved_by", "resolved_at", "note"])
        _record_staff_action(discrepancy, actor=actor, reason=reason, before=before)
        run = discrepancy.run
        if not run.discrepancies.filter(state=DiscrepancyState.OPEN).exists():
            ReconciliationRun.objects.filter(pk=run.pk).update(status=RunStatus.CLEAN)
    return discrepancy


def _record_staff_action(discrepancy: Discrepancy, *, actor: User, reason: str, before: dict[str, Any]) -> None:
    staff_action_record(
        actor=actor,
        action="discrepancy_accept" if discrepancy.state == DiscrepancyState.ACCEPTED else "discrepancy_resolve",
        object_type="discrepancy",
        object_id=str(discrepancy.pk),
        reason=reason,
        before=before,
        after={"state": discrepancy.state},
    )
