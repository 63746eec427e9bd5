"""Reconciling customers' saved payment methods: each gateway customer's attached cards against our rows.

Our gateway customers (`CustomerGatewayToken`) are read in batches by primary key; for a batch, the
gateway lists each customer's attached card methods (a few calls at a time), then one query reads every
row of ours the batch needs: the batch's active methods and any row of a listed reference. So a batch
costs the same queries whether its customers have one method or fifty.

Three kinds of difference: a method attached at the gateway with no row here (`method_missing_here`),
an active row the gateway no longer lists (`method_missing_at_gateway`), and a row detached here that the
gateway still lists (`method_detached_here`). With `fix`, the first two are corrected through the
customers services, after the gateway is asked again about that one method; the third stays for staff
(a detached method is final here: it is detached at the gateway in the Dashboard, or accepted).
"""

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q

from config.api.errors import ApplicationError
from customers import services as customer_services
from customers.models import Customer, CustomerGatewayToken, PaymentMethod, PaymentMethodStatus
from gateways.base import Gateway, GatewayError, PaymentMethodResult, Permanent
from payments.models import ChangeSource
from reconciliation.models import Discrepancy, DiscrepancyKind, DiscrepancyState, ReconciliationRun

logger = logging.getLogger(__name__)
K = DiscrepancyKind
ACTIVE = PaymentMethodStatus.ACTIVE

CUSTOMER_BATCH_SIZE = 500  # gateway customers per batch: one listing call each, two queries for the batch
LIST_CONCURRENCY = 4  # listing calls in flight at once (Stripe's test mode allows 25 requests a second)
_ROW_FIELDS = (
    "id",
    "public_id",
    "customer_id",
    "gateway_reference",
    "status",
    "brand",
    "last4",
    "exp_month",
    "exp_year",
)

Progress = Callable[[int, int], None]  # (customers compared so far, our gateway customers)


@dataclass
class _Customer:
    pk: int
    reference: str  # the gateway's customer (cus_…)
    listed: list[PaymentMethodResult] = field(default_factory=list)
    unknown_there: str = ""  # the gateway's message when it does not know this customer


def _theirs(method: PaymentMethodResult) -> dict[str, Any]:
    card = method.card
    values: dict[str, Any] = {"reference": method.reference, "customer": method.customer_reference}
    if card is not None:
        values |= {"brand": card.brand, "last4": card.last4, "exp_month": card.exp_month, "exp_year": card.exp_year}
    return values


def _ours(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["public_id"],
        "status": row["status"],
        "brand": row["brand"],
        "last4": row["last4"],
        "exp_month": row["exp_month"],
        "exp_year": row["exp_year"],
    }


class PaymentMethodReconciler:
    def __init__(
        self,
        run: ReconciliationRun,
        gateway: Gateway,
        *,
        fix: bool,
        progress: Progress | None,
        batch_size: int = CUSTOMER_BATCH_SIZE,
        concurrency: int = LIST_CONCURRENCY,
    ) -> None:
        self.run = run
        self.gateway = gateway
        self.fix = fix
        self.progress = progress
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.tokens = CustomerGatewayToken.objects.filter(gateway=gateway.name)

    def execute(self) -> None:
        expected = self.tokens.count()
        for batch in self._batches():
            self._list(batch)
            self._compare_batch(batch)
            self.run.customers_compared += len(batch)
            if self.progress:
                self.progress(self.run.customers_compared, expected)

    def _batches(self) -> Iterator[list[_Customer]]:
        """Our gateway customers by primary key (keyset pages: one query each, whatever the offset)."""
        after = 0
        while True:
            rows = list(
                self.tokens.filter(pk__gt=after)
                .order_by("pk")
                .values_list("pk", "customer_id", "reference")[: self.batch_size]
            )
            if not rows:
                return
            yield [_Customer(pk=customer_pk, reference=reference) for _, customer_pk, reference in rows]
            if len(rows) < self.batch_size:
                return
            after = rows[-1][0]

    def _list(self, batch: list[_Customer]) -> None:
        """Each customer's attached methods at the gateway, `concurrency` calls at a time (no database access)."""
        if self.concurrency <= 1 or len(batch) == 1:
            for customer in batch:
                self._list_one(customer)
            return
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(batch))) as pool:
            list(pool.map(self._list_one, batch))  # re-raises the first failure

    def _list_one(self, customer: _Customer) -> None:
        try:
            customer.listed = list(self.gateway.list_payment_methods(customer_reference=customer.reference))
        except Permanent as exc:
            if exc.code != "resource_missing":
                raise  # a bad key or a refused request: the run fails rather than reporting every method missing
            customer.unknown_there = exc.message or "The gateway does not know this customer."

    def _compare_batch(self, batch: list[_Customer]) -> None:
        run = self.run
        references = [method.reference for customer in batch for method in customer.listed]
        rows = PaymentMethod.objects.filter(gateway=self.gateway.name).filter(
            Q(customer_id__in=[customer.pk for customer in batch], status=ACTIVE) | Q(gateway_reference__in=references)
        )
        by_reference: dict[str, dict[str, Any]] = {}
        active: defaultdict[int, list[dict[str, Any]]] = defaultdict(list)
        for row in rows.values(*_ROW_FIELDS):
            by_reference[row["gateway_reference"]] = row
            if row["status"] == ACTIVE:
                active[row["customer_id"]].append(row)

        found: list[Discrepancy] = []
        fixable: list[tuple[Discrepancy, _Customer]] = []
        for customer in batch:
            run.gateway_payment_methods += len(customer.listed)
            run.our_payment_methods += len(active[customer.pk])
            listed = set()
            for method in customer.listed:
                listed.add(method.reference)
                row = by_reference.get(method.reference)
                if row is not None and row["customer_id"] == customer.pk and row["status"] == ACTIVE:
                    run.payment_methods_matched += 1
                    continue
                discrepancy = Discrepancy(
                    run=run,
                    customer_id=customer.pk,
                    payment_method_id=row["id"] if row else None,
                    gateway_reference=method.reference,
                    ours=_ours(row) if row else {},
                    theirs=_theirs(method),
                )
                if row is not None and row["customer_id"] == customer.pk:  # ours, detached here only
                    discrepancy.kind = K.METHOD_DETACHED_HERE
                else:  # no row, or another customer's row: staff look into the second
                    discrepancy.kind = K.METHOD_MISSING_HERE
                    if row is None:
                        fixable.append((discrepancy, customer))
                    else:
                        discrepancy.note = "Our row of this method belongs to another customer."
                found.append(discrepancy)
            for row in active[customer.pk]:
                if row["gateway_reference"] in listed:
                    continue
                discrepancy = Discrepancy(
                    run=run,
                    kind=K.METHOD_MISSING_AT_GATEWAY,
                    customer_id=customer.pk,
                    payment_method_id=row["id"],
                    gateway_reference=row["gateway_reference"],
                    ours=_ours(row),
                    theirs={"customer": customer.reference},
                    note=customer.unknown_there,
                )
                found.append(discrepancy)
                fixable.append((discrepancy, customer))
        if self.fix and fixable:
            self._apply_fixes(fixable)  # before the rows are written: a fixed discrepancy is stored fixed
        if found:
            Discrepancy.objects.bulk_create(found)
            run.discrepancies_found += len(found)

    # --- fixing ---------------------------------------------------------------------------------
    def _apply_fixes(self, fixable: list[tuple[Discrepancy, _Customer]]) -> None:
        customers = Customer.objects.in_bulk({customer.pk for _, customer in fixable})
        for discrepancy, customer in fixable:
            try:
                if discrepancy.kind == K.METHOD_MISSING_HERE:
                    fixed = self._save_here(discrepancy, customers[customer.pk])
                else:
                    fixed = self._detach_here(discrepancy, customer)
            except (GatewayError, ApplicationError) as exc:  # left open, with why; the next run tries again
                discrepancy.note = f"Not fixed: {getattr(exc, 'message', '') or type(exc).__name__}"
                logger.warning(
                    "Reconciliation fix failed",
                    extra={"discrepancy_kind": discrepancy.kind, "gateway_reference": discrepancy.gateway_reference},
                )
                continue
            if fixed:
                discrepancy.state = DiscrepancyState.FIXED
                self.run.discrepancies_fixed += 1

    def _save_here(self, discrepancy: Discrepancy, customer: Customer) -> bool:
        """Save the method through the customers service, which reads it at the gateway again first."""
        method = customer_services.payment_method_save(
            customer=customer, gateway=self.gateway, reference=discrepancy.gateway_reference
        )
        if method is None or method.customer_id != customer.pk or method.status != ACTIVE:
            discrepancy.note = "Not fixed: the gateway no longer shows it attached to this customer."
            return False
        discrepancy.payment_method = method
        discrepancy.note = f"Saved here as {method.public_id}."
        return True

    def _detach_here(self, discrepancy: Discrepancy, customer: _Customer) -> bool:
        """Detach our row only when the gateway, asked about this method, says it is attached to nobody.

        A method the gateway does not know at all stays open: a wrong account must never detach our cards.
        """
        result = self.gateway.retrieve_payment_method(payment_method=discrepancy.gateway_reference)
        if result.customer_reference:
            attached = "this customer" if result.customer_reference == customer.reference else "another customer"
            discrepancy.note = f"Not fixed: the gateway shows it attached to {attached}."
            return False
        assert discrepancy.payment_method_id is not None  # noqa: S101 - set for every missing-at-gateway row
        detached = customer_services.payment_method_detach_local(
            method_id=discrepancy.payment_method_id, source=ChangeSource.WORKER
        )
        discrepancy.note = "Detached here." if detached else "Already detached here."
        return True
