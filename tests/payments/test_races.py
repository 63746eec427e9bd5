"""Races on one payment, on PostgreSQL with real threads: the row lock lets exactly one operation win."""

import pytest

from events.models import Event
from gateways.simulator import SimulatorGateway
from payments.models import Payment, PaymentStatusChange
from tests.conftest import client_for
from tests.helpers import run_in_threads

TERMINAL_OR_CAPTURED = {"succeeded", "canceled"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_number", range(3))
def test_ten_captures_and_one_cancel_make_exactly_one_money_operation(make_client, round_number):
    shop = make_client(f"shop-race-{round_number}")
    created = shop.post(
        "/api/v1/payments/",
        {
            "amount": 5000,
            "currency": "usd",
            "customer_id": "cus_race",
            "payment_method": "pm_card_visa",
            "capture_method": "manual",
            "confirm": True,
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY=f"race-{round_number}",
    ).json()
    path = f"/api/v1/payments/{created['id']}"
    captures_before = SimulatorGateway.performed_count("capture_intent")
    cancels_before = SimulatorGateway.performed_count("cancel_intent")
    clients = [client_for(shop.user) for _ in range(11)]
    calls = [lambda c=c: c.post(f"{path}/capture/", {}, format="json") for c in clients[:10]]
    calls.append(lambda c=clients[10]: c.post(f"{path}/cancel/", {}, format="json"))

    responses = run_in_threads(calls)

    statuses = [r.status_code for r in responses]
    assert sorted(set(statuses)) == [200, 409], statuses
    assert statuses.count(200) == 1
    for conflict in (r for r in responses if r.status_code == 409):
        assert conflict.json()["error"]["code"] == "payment_unexpected_state"
    payment = Payment.objects.get(public_id=created["id"])
    assert payment.status in TERMINAL_OR_CAPTURED
    assert payment.pending_operation == ""
    money_operations = (SimulatorGateway.performed_count("capture_intent") - captures_before) + (
        SimulatorGateway.performed_count("cancel_intent") - cancels_before
    )
    assert money_operations == 1
    terminal_changes = PaymentStatusChange.objects.filter(payment=payment, to_status__in=TERMINAL_OR_CAPTURED)
    assert terminal_changes.count() == 1
    assert (
        Event.objects.filter(subject_id=payment.public_id, type__in=["payment.captured", "payment.canceled"]).count()
        == 1
    )
