"""200 gateway operations with 30 % injected timeouts and outages, a real worker finishing the work.

Every payment and refund must end in a terminal state, and nothing may be applied twice: one
charge per payment, one gateway refund per refund, amounts that add up.
"""

import random
import time

import pytest
from django.db.models import Sum

from events.models import Event
from gateways.simulator import SimulatorGateway
from payments.models import Payment, PaymentStatusChange
from refunds.models import Refund
from tests.helpers import wait_for

PAYMENTS = 100
REFUNDS = 100
FAULT_RATE = 0.3
KINDS = ("timeout", "timeout_before", "unavailable")


def _maybe_fault(rng: random.Random, operation: str, injected: list[str]) -> None:
    if rng.random() < FAULT_RATE:
        kind = rng.choice(KINDS)
        SimulatorGateway.inject_fault(operation, kind)
        injected.append(f"{operation}:{kind}")


def _post_until_not_502(client, path: str, body: dict, key: str, attempts: int = 6):
    """A storefront retries a 502 with the same Idempotency-Key, as API.md tells it to."""
    for _ in range(attempts):
        response = client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
        if response.status_code != 502:
            return response
    return response


@pytest.mark.django_db(transaction=True)
def test_every_operation_ends_terminal_and_nothing_is_applied_twice(storefront, simulator, worker, settings):
    settings.PAYMENTS_RETRY_BASE_SECONDS = settings.REFUNDS_RETRY_BASE_SECONDS = 0.05
    settings.PAYMENTS_RETRY_MAX_SECONDS = settings.REFUNDS_RETRY_MAX_SECONDS = 0.3
    settings.PAYMENTS_SETTLE_MAX_RETRIES = settings.REFUNDS_SUBMIT_MAX_RETRIES = 30
    settings.RATELIMIT_ENABLE = False
    rng = random.Random(20261123)
    injected: list[str] = []
    started = time.monotonic()
    statuses: dict[int, int] = {}

    for n in range(PAYMENTS):
        _maybe_fault(rng, "create_intent", injected)  # create + confirm is one call
        body = {
            "amount": 5000,
            "currency": "usd",
            "customer_id": f"c{n}",
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
        response = _post_until_not_502(storefront, "/api/v1/payments/", body, f"pay-{n}")
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    wait_for(lambda: Payment.objects.filter(status="succeeded").count() == PAYMENTS, timeout=60)
    payment_ids = list(Payment.objects.order_by("id").values_list("public_id", flat=True))
    for n in range(REFUNDS):
        _maybe_fault(rng, "create_refund", injected)
        path = f"/api/v1/payments/{payment_ids[n % PAYMENTS]}/refunds/"
        response = _post_until_not_502(storefront, path, {"amount": 1000 + n}, f"re-{n}")
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    wait_for(lambda: not Refund.objects.filter(status="pending").exists(), timeout=60)
    elapsed = time.monotonic() - started

    assert statuses == {201: PAYMENTS + REFUNDS}
    assert Payment.objects.count() == PAYMENTS
    assert Payment.objects.exclude(status="partially_refunded").count() == 0
    assert Refund.objects.count() == REFUNDS
    assert list(Refund.objects.exclude(status="succeeded").values_list("failure_reason", flat=True)) == []
    assert simulator.performed_count("create_intent") == PAYMENTS  # each created and confirmed in one call
    assert simulator.call_count("confirm_intent") == 0
    assert simulator.performed_count("create_refund") == REFUNDS
    assert PaymentStatusChange.objects.filter(to_status="succeeded").count() == PAYMENTS
    assert Event.objects.filter(type="payment.captured").count() == PAYMENTS
    assert Event.objects.filter(type="refund.succeeded").count() == REFUNDS
    for payment in Payment.objects.all():
        refunded = Refund.objects.filter(payment=payment, status="succeeded").aggregate(total=Sum("amount"))["total"]
        assert payment.amount_refunded == refunded
    calls = sum(simulator.call_count(op) for op in ("create_intent", "confirm_intent", "create_refund"))
    print(  # noqa: T201 - the figures the closing note quotes
        f"\nfault injection: {PAYMENTS + REFUNDS} operations, {len(injected)} faults injected "
        f"({len(injected) / (PAYMENTS + REFUNDS):.0%}), {calls} gateway calls, all terminal in {elapsed:.1f}s"
    )
