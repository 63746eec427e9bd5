"""Reconciling subscriptions and their invoices: the gateway's subscriptions created in the window against our rows.

The gateway's subscriptions are streamed in batches; for a batch, the gateway lists each one's invoices (a few
calls at a time, no database access meanwhile), then two queries read every row of ours the batch needs: the
subscriptions by gateway reference (with their price's reference), and their invoices together with any row of
a listed invoice reference. So a batch costs the same queries whatever its number of subscriptions or invoices.
Our subscriptions of the window the gateway never listed are found at the end by streaming ours once against
the set of those matched (subscriptions created in a day are far fewer than payments: a set of ids is small).

Kinds: a subscription or an invoice only at the gateway (`*_missing_here`) or only here (`*_missing_at_gateway`),
a subscription's status, or its terms (price, quantity, current period, cancel at period end), an invoice's
status, or (the status agreeing) its amounts due, paid and remaining. With `fix`, the gateway's truth is applied
through the subscriptions services (`subscription_apply`, `invoice_record`: forward moves only, with history and
events), an invoice's charge recorded as its payment (`invoice_payment_sync`); a discrepancy is stored fixed when
our row then agrees. What is only here stays for staff.
"""

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q

from gateways.billing import BillingGateway, InvoiceResult, SubscriptionResult
from payments.models import ChangeSource
from reconciliation.models import Discrepancy, DiscrepancyKind, DiscrepancyState, ReconciliationRun
from subscriptions import services as subscription_services
from subscriptions.models import Invoice, Subscription

logger = logging.getLogger(__name__)
K = DiscrepancyKind
SOURCE = ChangeSource.WORKER  # the reconciliation worker (ChangeSource has no value of its own for it)

SUBSCRIPTION_BATCH_SIZE = 500  # gateway subscriptions per batch: one invoice listing each, two queries a batch
LIST_CONCURRENCY = 4  # invoice listings in flight at once (Stripe's test mode allows 25 requests a second)

_SUBSCRIPTION_FIELDS = (
    "id",
    "public_id",
    "gateway_reference",
    "status",
    "price__reference",
    "quantity",
    "current_period_start",
    "current_period_end",
    "cancel_at_period_end",
)
_INVOICE_FIELDS = (
    "id",
    "public_id",
    "gateway_reference",
    "subscription_id",
    "status",
    "currency",
    "amount_due",
    "amount_paid",
    "amount_remaining",
)
_AMOUNTS = ("amount_due", "amount_paid", "amount_remaining")

Progress = Callable[[int, int], None]  # (gateway subscriptions compared so far, ours in the window)
Difference = tuple[str, dict[str, Any], dict[str, Any]]


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


# --- comparing ------------------------------------------------------------------------------------
def _subscription_terms(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "price": row["price__reference"],
        "quantity": row["quantity"],
        "current_period_start": row["current_period_start"],
        "current_period_end": row["current_period_end"],
        "cancel_at_period_end": row["cancel_at_period_end"],
    }


def _result_terms(result: SubscriptionResult) -> dict[str, Any]:
    return {
        "price": result.price_reference,
        "quantity": result.quantity,
        "current_period_start": result.current_period_start,
        "current_period_end": result.current_period_end,
        "cancel_at_period_end": result.cancel_at_period_end,
    }


def compare_subscription(row: dict[str, Any], result: SubscriptionResult) -> list[Difference]:
    """The differences between one of our subscriptions (`.values()` row) and the gateway's."""
    found: list[Difference] = []
    if row["status"] != result.status:
        found.append((K.SUBSCRIPTION_STATUS_MISMATCH, {"status": row["status"]}, {"status": result.status}))
    ours, theirs = _subscription_terms(row), _result_terms(result)
    differing = [name for name in ours if ours[name] != theirs[name]]
    if differing:
        found.append(
            (
                K.SUBSCRIPTION_FIELDS_MISMATCH,
                {name: _json(ours[name]) for name in differing},
                {name: _json(theirs[name]) for name in differing},
            )
        )
    return found


def compare_invoice(row: dict[str, Any], result: InvoiceResult) -> list[Difference]:
    """The differences between one of our invoices (`.values()` row) and the gateway's."""
    if row["status"] != result.status:  # a status difference explains the amounts paid and remaining
        return [(K.INVOICE_STATUS_MISMATCH, {"status": row["status"]}, {"status": result.status})]
    theirs = {"currency": result.currency} | {name: getattr(result, name) for name in _AMOUNTS}
    differing = [name for name in ("currency", *_AMOUNTS) if row[name] != theirs[name]]
    if not differing:
        return []
    return [
        (
            K.INVOICE_AMOUNT_MISMATCH,
            {"currency": row["currency"]} | {name: row[name] for name in differing},
            {"currency": result.currency} | {name: theirs[name] for name in differing},
        )
    ]


def _subscription_values(result: SubscriptionResult) -> dict[str, Any]:
    values = {"status": result.status, "customer": result.customer_reference}
    return values | {name: _json(value) for name, value in _result_terms(result).items()}


def _invoice_values(result: InvoiceResult) -> dict[str, Any]:
    return {
        "status": result.status,
        "subscription": result.subscription_reference,
        "currency": result.currency,
        **{name: getattr(result, name) for name in _AMOUNTS},
    }


def _our_invoice_values(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["public_id"], "status": row["status"], "currency": row["currency"]} | {
        name: row[name] for name in _AMOUNTS
    }


@dataclass
class _Listed:
    """One gateway subscription of the batch and its invoices (oldest first)."""

    result: SubscriptionResult
    invoices: list[InvoiceResult] = field(default_factory=list)


@dataclass
class _Fix:
    """A discrepancy to correct: the subscription's, then its invoices' (in that order: an invoice needs it)."""

    listed: _Listed
    subscription: list[Discrepancy] = field(default_factory=list)
    invoices: list[tuple[Discrepancy, InvoiceResult]] = field(default_factory=list)


def _batched(items: Iterable[SubscriptionResult], size: int) -> Iterator[list[_Listed]]:
    batch: list[_Listed] = []
    for item in items:
        batch.append(_Listed(result=item))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class SubscriptionReconciler:
    def __init__(
        self,
        run: ReconciliationRun,
        gateway: BillingGateway,
        *,
        fix: bool,
        progress: Progress | None,
        batch_size: int = SUBSCRIPTION_BATCH_SIZE,
        concurrency: int = LIST_CONCURRENCY,
    ) -> None:
        self.run = run
        self.gateway = gateway
        self.fix = fix
        self.progress = progress
        self.batch_size = batch_size
        self.concurrency = concurrency
        # The gateway lists by its own creation time (a simulator clock's, Stripe's `created`); ours is the same
        # time, stored when the row was made (`created_at` stands in for a row stored without it).
        in_window = Q(gateway_created_at__gte=run.window_start, gateway_created_at__lt=run.window_end)
        made_in_window = Q(created_at__gte=run.window_start, created_at__lt=run.window_end)
        self.ours = Subscription.objects.filter(gateway=gateway.name).filter(
            in_window | Q(gateway_created_at__isnull=True) & made_in_window
        )
        self.seen: set[int] = set()

    def execute(self) -> None:
        run = self.run
        run.our_subscriptions = self.ours.count()
        listed = self.gateway.list_subscriptions(created_gte=run.window_start, created_lt=run.window_end)
        for batch in _batched(listed, self.batch_size):
            self._list_invoices(batch)
            self._compare_batch(batch)
            run.gateway_subscriptions += len(batch)
            if self.progress:
                self.progress(run.gateway_subscriptions, run.our_subscriptions)
        if run.our_subscriptions:
            self._find_missing_at_gateway()

    # --- the gateway's side (no database access) ------------------------------------------------------
    def _list_invoices(self, batch: list[_Listed]) -> None:
        """Each subscription's invoices at the gateway, `concurrency` listings at a time."""
        if self.concurrency <= 1 or len(batch) == 1:
            for listed in batch:
                self._list_one(listed)
            return
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(batch))) as pool:
            list(pool.map(self._list_one, batch))  # re-raises the first failure: the run fails

    def _list_one(self, listed: _Listed) -> None:
        newest_first = list(self.gateway.list_invoices(subscription_reference=listed.result.reference))
        listed.invoices = newest_first[::-1]

    # --- comparing a batch ------------------------------------------------------------------------------
    def _compare_batch(self, batch: list[_Listed]) -> None:
        run = self.run
        subscriptions = {
            row["gateway_reference"]: row
            for row in Subscription.objects.filter(
                gateway_reference__in=[listed.result.reference for listed in batch]
            ).values(*_SUBSCRIPTION_FIELDS)
        }
        matched_ids = [row["id"] for row in subscriptions.values()]
        references = [invoice.reference for listed in batch for invoice in listed.invoices]
        invoices_by_reference: dict[str, dict[str, Any]] = {}
        invoices_of: defaultdict[int, list[dict[str, Any]]] = defaultdict(list)
        if matched_ids or references:
            rows = Invoice.objects.filter(Q(subscription_id__in=matched_ids) | Q(gateway_reference__in=references))
            for row in rows.values(*_INVOICE_FIELDS):
                invoices_by_reference[row["gateway_reference"]] = row
                if row["subscription_id"] is not None:
                    invoices_of[row["subscription_id"]].append(row)

        found: list[Discrepancy] = []
        fixes: list[_Fix] = []
        for listed in batch:
            result = listed.result
            run.gateway_invoices += len(listed.invoices)
            row = subscriptions.get(result.reference)
            fixing = _Fix(listed=listed)
            if row is None:
                discrepancy = Discrepancy(
                    run=run,
                    kind=K.SUBSCRIPTION_MISSING_HERE,
                    gateway_reference=result.reference,
                    theirs=_subscription_values(result) | {"invoices": len(listed.invoices)},
                )
                found.append(discrepancy)
                fixing.subscription.append(discrepancy)
                fixes.append(fixing)
                continue  # its invoices are the subscription's (recorded with it by a fix)
            self.seen.add(row["id"])
            differences = compare_subscription(row, result)
            if not differences:
                run.subscriptions_matched += 1
            for kind, ours, theirs in differences:
                discrepancy = Discrepancy(
                    run=run,
                    kind=kind,
                    subscription_id=row["id"],
                    gateway_reference=result.reference,
                    ours=ours,
                    theirs=theirs,
                )
                found.append(discrepancy)
                fixing.subscription.append(discrepancy)
            found += self._compare_invoices(listed, row, invoices_by_reference, invoices_of[row["id"]], fixing)
            if fixing.subscription or fixing.invoices:
                fixes.append(fixing)
        # Fixes run before the rows are written, so a fixed discrepancy is stored fixed (one bulk insert a batch).
        if self.fix:
            for fixing in fixes:
                self._apply(fixing)
        if found:
            Discrepancy.objects.bulk_create(found)
            run.discrepancies_found += len(found)

    def _compare_invoices(
        self,
        listed: _Listed,
        subscription: dict[str, Any],
        by_reference: dict[str, dict[str, Any]],
        ours: list[dict[str, Any]],
        fixing: _Fix,
    ) -> list[Discrepancy]:
        run = self.run
        run.our_invoices += len(ours)
        found: list[Discrepancy] = []
        listed_references = set()
        for invoice in listed.invoices:
            listed_references.add(invoice.reference)
            row = by_reference.get(invoice.reference)
            if row is None:
                discrepancy = Discrepancy(
                    run=run,
                    kind=K.INVOICE_MISSING_HERE,
                    subscription_id=subscription["id"],
                    gateway_reference=invoice.reference,
                    theirs=_invoice_values(invoice),
                )
                found.append(discrepancy)
                fixing.invoices.append((discrepancy, invoice))
                continue
            differences = compare_invoice(row, invoice)
            if not differences:
                run.invoices_matched += 1
            for kind, our_values, theirs in differences:
                discrepancy = Discrepancy(
                    run=run,
                    kind=kind,
                    subscription_id=subscription["id"],
                    invoice_id=row["id"],
                    gateway_reference=invoice.reference,
                    ours=our_values,
                    theirs=theirs,
                )
                found.append(discrepancy)
                fixing.invoices.append((discrepancy, invoice))
        for row in ours:
            if row["gateway_reference"] not in listed_references:
                found.append(
                    Discrepancy(
                        run=run,
                        kind=K.INVOICE_MISSING_AT_GATEWAY,
                        subscription_id=subscription["id"],
                        invoice_id=row["id"],
                        gateway_reference=row["gateway_reference"],
                        ours=_our_invoice_values(row),
                        theirs={"subscription": listed.result.reference},
                    )
                )
        return found

    # --- fixing -------------------------------------------------------------------------------------------
    def _apply(self, fixing: _Fix) -> None:
        """Apply the gateway's subscription, then each differing invoice, through the subscriptions services."""
        result = fixing.listed.result
        if fixing.subscription:
            subscription, _ = subscription_services.subscription_apply(
                result=result, gateway_name=self.gateway.name, source=SOURCE
            )
            for discrepancy in fixing.subscription:
                self._settle_subscription(discrepancy, subscription, result)
            if subscription is not None and fixing.subscription[0].kind == K.SUBSCRIPTION_MISSING_HERE:
                for listed_invoice in fixing.listed.invoices:  # recorded with it, oldest first
                    self._record_invoice(listed_invoice)
        for discrepancy, invoice_result in fixing.invoices:
            self._settle_invoice(discrepancy, self._record_invoice(invoice_result), invoice_result)

    def _settle_subscription(
        self, discrepancy: Discrepancy, subscription: Subscription | None, result: SubscriptionResult
    ) -> None:
        if subscription is None:
            discrepancy.note = "Not fixed: its customer or price is not ours."
            return
        discrepancy.subscription = subscription
        self.seen.add(subscription.pk)  # one recorded now is not "only here" when ours are streamed at the end
        row = Subscription.objects.filter(pk=subscription.pk).values(*_SUBSCRIPTION_FIELDS).get()
        still = {kind for kind, _, _ in compare_subscription(row, result)}
        if discrepancy.kind == K.SUBSCRIPTION_MISSING_HERE:
            discrepancy.note = f"Recorded here as {subscription.public_id}."
        elif discrepancy.kind in still:
            discrepancy.note = f"Not fixed: ours ({row['status']}) cannot move to what the gateway shows."
            return
        else:
            discrepancy.note = "Applied the gateway's subscription."
        self._fixed(discrepancy)

    def _record_invoice(self, result: InvoiceResult) -> Invoice | None:
        invoice, _ = subscription_services.invoice_record(result=result, gateway_name=self.gateway.name, source=SOURCE)
        if invoice is not None and subscription_services.invoice_needs_payment(invoice) and invoice.payment_id is None:
            subscription_services.invoice_payment_sync(invoice_id=invoice.pk, source=SOURCE)
        return invoice

    def _settle_invoice(self, discrepancy: Discrepancy, invoice: Invoice | None, result: InvoiceResult) -> None:
        if invoice is None:
            discrepancy.note = "Not fixed: its subscription and customer are not ours."
            return
        discrepancy.invoice = invoice
        row = Invoice.objects.filter(pk=invoice.pk).values(*_INVOICE_FIELDS).get()
        if compare_invoice(row, result):
            discrepancy.note = f"Not fixed: ours ({row['status']}) cannot move to what the gateway shows."
            return
        discrepancy.note = (
            f"Recorded here as {invoice.public_id}."
            if discrepancy.kind == K.INVOICE_MISSING_HERE
            else "Applied the gateway's invoice."
        )
        self._fixed(discrepancy)

    def _fixed(self, discrepancy: Discrepancy) -> None:
        discrepancy.state = DiscrepancyState.FIXED
        self.run.discrepancies_fixed += 1

    # --- only here ----------------------------------------------------------------------------------------
    def _find_missing_at_gateway(self) -> None:
        """Stream our subscriptions of the window once; those the gateway never listed are only here."""
        run = self.run
        pending: list[Discrepancy] = []
        rows = self.ours.order_by().values(*_SUBSCRIPTION_FIELDS).iterator(chunk_size=self.batch_size)
        for row in rows:
            if row["id"] in self.seen:
                continue
            ours = {"id": row["public_id"], "status": row["status"]}
            ours |= {name: _json(value) for name, value in _subscription_terms(row).items()}
            pending.append(
                Discrepancy(
                    run=run,
                    kind=K.SUBSCRIPTION_MISSING_AT_GATEWAY,
                    subscription_id=row["id"],
                    gateway_reference=row["gateway_reference"],
                    ours=ours,
                )
            )
            if len(pending) >= self.batch_size:
                Discrepancy.objects.bulk_create(pending)
                run.discrepancies_found += len(pending)
                pending = []
        if pending:
            Discrepancy.objects.bulk_create(pending)
            run.discrepancies_found += len(pending)
