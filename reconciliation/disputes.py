"""Reconciling disputes: the gateway's disputes created in the window against our rows.

The gateway's disputes are streamed in batches of 500; a batch reads ours with one query (by gateway
reference) and, when some are missing here, their payments with one more (by the disputed intent), so a batch
costs the same queries whatever its number of disputes. Our disputes of the window the gateway never listed are
found at the end by streaming ours once against the set of those matched (disputes are few: a set of ids is
small).

Kinds: a dispute only at the gateway (`dispute_missing_here`: a lost webhook) or only here
(`dispute_missing_at_gateway`), its status (`dispute_status_mismatch`), or its amount or currency
(`dispute_amount_mismatch`). With `fix`, the gateway's dispute is applied through `disputes.services.
dispute_apply` (stored once, or moved forward through the state machine with history and events; never back),
and a discrepancy is stored fixed when our row then agrees. An amount that differs while the status agrees, a
status ours cannot move to, and what is only here stay for staff.
"""

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from django.db.models import Q

from disputes import services as dispute_services
from disputes.models import Dispute
from gateways.disputes import DisputeGateway, DisputeResult
from payments.models import ChangeSource, Payment
from reconciliation.models import Discrepancy, DiscrepancyKind, DiscrepancyState, ReconciliationRun

logger = logging.getLogger(__name__)
K = DiscrepancyKind
SOURCE = ChangeSource.WORKER  # the reconciliation worker (ChangeSource has no value of its own for it)

DISPUTE_BATCH_SIZE = 500  # gateway disputes per batch: one query a batch (two when some are missing here)

_DISPUTE_FIELDS = ("id", "public_id", "gateway_reference", "payment_id", "status", "amount", "currency")

Progress = Callable[[int, int], None]  # (gateway disputes compared so far, ours in the window)
Difference = tuple[str, dict[str, Any], dict[str, Any]]


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def compare_dispute(row: dict[str, Any], result: DisputeResult) -> list[Difference]:
    """The differences between one of our disputes (`.values()` row) and the gateway's (both name statuses alike)."""
    found: list[Difference] = []
    if row["status"] != result.status:
        found.append((K.DISPUTE_STATUS_MISMATCH, {"status": row["status"]}, {"status": result.status}))
    currency = (result.currency or row["currency"]).lower()
    if (row["amount"], row["currency"]) != (result.amount, currency):
        found.append(
            (
                K.DISPUTE_AMOUNT_MISMATCH,
                {"amount": row["amount"], "currency": row["currency"]},
                {"amount": result.amount, "currency": currency},
            )
        )
    return found


def _dispute_values(result: DisputeResult) -> dict[str, Any]:
    return {
        "status": result.status,
        "amount": result.amount,
        "currency": result.currency,
        "reason": result.reason,
        "intent": result.intent_reference,
        "charge": result.charge_reference,
        "evidence_due_by": _json(result.evidence_due_by),
    }


def _batched(items: Iterable[DisputeResult], size: int) -> Iterator[list[DisputeResult]]:
    batch: list[DisputeResult] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class DisputeReconciler:
    def __init__(
        self,
        run: ReconciliationRun,
        gateway: DisputeGateway,
        *,
        fix: bool,
        progress: Progress | None,
        batch_size: int = DISPUTE_BATCH_SIZE,
    ) -> None:
        self.run = run
        self.gateway = gateway
        self.fix = fix
        self.progress = progress
        self.batch_size = batch_size
        # The gateway lists by its own creation time (Stripe's `created`), stored on ours as `gateway_created_at`
        # (`created_at` stands in for a row stored without it).
        in_window = Q(gateway_created_at__gte=run.window_start, gateway_created_at__lt=run.window_end)
        made_in_window = Q(created_at__gte=run.window_start, created_at__lt=run.window_end)
        self.ours = Dispute.objects.filter(gateway_name=gateway.name).filter(
            in_window | Q(gateway_created_at__isnull=True) & made_in_window
        )
        self.seen: set[int] = set()

    def execute(self) -> None:
        run = self.run
        run.our_disputes = self.ours.count()
        listed = self.gateway.list_disputes(created_gte=run.window_start, created_lt=run.window_end)
        for batch in _batched(listed, self.batch_size):
            self._compare_batch(batch)
            run.gateway_disputes += len(batch)
            if self.progress:
                self.progress(run.gateway_disputes, run.our_disputes)
        if run.our_disputes:
            self._find_missing_at_gateway()

    # --- comparing a batch ------------------------------------------------------------------------------
    def _compare_batch(self, batch: list[DisputeResult]) -> None:
        run = self.run
        rows = {
            row["gateway_reference"]: row
            for row in Dispute.objects.filter(
                gateway_name=self.gateway.name, gateway_reference__in=[result.reference for result in batch]
            ).values(*_DISPUTE_FIELDS)
        }
        missing = [result for result in batch if result.reference not in rows]
        payments: dict[str, int] = {}
        intents = {result.intent_reference for result in missing if result.intent_reference}
        if intents:
            listed = Payment.objects.filter(gateway=self.gateway.name, gateway_reference__in=intents)
            payments = {reference: pk for reference, pk in listed.values_list("gateway_reference", "id") if reference}

        found: list[Discrepancy] = []
        fixes: list[tuple[list[Discrepancy], DisputeResult, int | None]] = []
        for result in batch:
            row = rows.get(result.reference)
            if row is None:
                payment_id = payments.get(result.intent_reference)
                discrepancy = Discrepancy(
                    run=run,
                    kind=K.DISPUTE_MISSING_HERE,
                    payment_id=payment_id,
                    gateway_reference=result.reference,
                    theirs=_dispute_values(result),
                )
                found.append(discrepancy)
                fixes.append(([discrepancy], result, payment_id))
                continue
            self.seen.add(row["id"])
            differences = compare_dispute(row, result)
            if not differences:
                run.disputes_matched += 1
                continue
            discrepancies = [
                Discrepancy(
                    run=run,
                    kind=kind,
                    dispute_id=row["id"],
                    payment_id=row["payment_id"],
                    gateway_reference=result.reference,
                    ours=ours,
                    theirs=theirs,
                )
                for kind, ours, theirs in differences
            ]
            found += discrepancies
            fixes.append((discrepancies, result, row["payment_id"]))
        # Fixes run before the rows are written, so a fixed discrepancy is stored fixed (one bulk insert a batch).
        if self.fix:
            for discrepancies, result, payment_id in fixes:
                self._apply(discrepancies, result, payment_id)
        if found:
            Discrepancy.objects.bulk_create(found)
            run.discrepancies_found += len(found)

    # --- fixing -------------------------------------------------------------------------------------------
    def _apply(self, discrepancies: list[Discrepancy], result: DisputeResult, payment_id: int | None) -> None:
        """Apply the gateway's dispute through the disputes service, then settle what now agrees."""
        if payment_id is None:
            for discrepancy in discrepancies:
                discrepancy.note = "Not fixed: the disputed payment is not ours."
            return
        kinds = {discrepancy.kind for discrepancy in discrepancies}
        if kinds == {K.DISPUTE_AMOUNT_MISMATCH}:
            # news of the same status never changes the amount (`dispute_apply`): staff decide
            discrepancies[0].note = "Not fixed: the statuses agree; the amount is for staff."
            return
        dispute, _ = dispute_services.dispute_apply(
            result=result, gateway_name=self.gateway.name, source=SOURCE, payment_id=payment_id
        )
        if dispute is None:
            for discrepancy in discrepancies:
                discrepancy.note = "Not fixed: the gateway's dispute could not be stored."
            return
        self.seen.add(dispute.pk)  # one recorded now is not "only here" when ours are streamed at the end
        row = Dispute.objects.filter(pk=dispute.pk).values(*_DISPUTE_FIELDS).get()
        still = {kind for kind, _, _ in compare_dispute(row, result)}
        for discrepancy in discrepancies:
            discrepancy.dispute = dispute
            if discrepancy.kind == K.DISPUTE_MISSING_HERE:
                discrepancy.note = f"Recorded here as {dispute.public_id}."
            elif discrepancy.kind in still:
                discrepancy.note = (
                    "Not fixed: the amount is for staff."
                    if discrepancy.kind == K.DISPUTE_AMOUNT_MISMATCH
                    else f"Not fixed: ours ({row['status']}) cannot move to what the gateway shows."
                )
                continue
            else:
                discrepancy.note = "Applied the gateway's dispute."
            discrepancy.state = DiscrepancyState.FIXED
            self.run.discrepancies_fixed += 1

    # --- only here ----------------------------------------------------------------------------------------
    def _find_missing_at_gateway(self) -> None:
        """Stream our disputes of the window once; those the gateway never listed are only here."""
        run = self.run
        pending: list[Discrepancy] = []
        rows = self.ours.order_by().values(*_DISPUTE_FIELDS).iterator(chunk_size=self.batch_size)
        for row in rows:
            if row["id"] in self.seen:
                continue
            pending.append(
                Discrepancy(
                    run=run,
                    kind=K.DISPUTE_MISSING_AT_GATEWAY,
                    dispute_id=row["id"],
                    payment_id=row["payment_id"],
                    gateway_reference=row["gateway_reference"],
                    ours={
                        "id": row["public_id"],
                        "status": row["status"],
                        "amount": row["amount"],
                        "currency": row["currency"],
                    },
                )
            )
            if len(pending) >= self.batch_size:
                Discrepancy.objects.bulk_create(pending)
                run.discrepancies_found += len(pending)
                pending = []
        if pending:
            Discrepancy.objects.bulk_create(pending)
            run.discrepancies_found += len(pending)
