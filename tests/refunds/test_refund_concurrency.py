"""Concurrent refunds on one payment, PostgreSQL and real threads: never more than was captured."""

import pytest

from payments.models import Payment
from refunds.models import Refund
from tests.conftest import client_for
from tests.helpers import run_in_threads

CAPTURED = 10_000
PART = 700  # 20 x 700 = 14,000 > 10,000: at most 14 can be accepted


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_number", range(3))
def test_twenty_concurrent_partial_refunds_never_exceed_the_captured_amount(make_client, round_number):
    shop = make_client(f"shop-refund-race-{round_number}")
    payment = shop.post(
        "/api/v1/payments/",
        {"amount": CAPTURED, "currency": "usd", "customer_id": "c", "payment_method": "pm_card_visa", "confirm": True},
        format="json",
        HTTP_IDEMPOTENCY_KEY=f"race-pay-{round_number}",
    ).json()
    path = f"/api/v1/payments/{payment['id']}/refunds/"
    clients = [client_for(shop.user) for _ in range(20)]

    responses = run_in_threads(
        [
            lambda c=c, i=i: c.post(path, {"amount": PART}, format="json", HTTP_IDEMPOTENCY_KEY=f"r{round_number}-{i}")
            for i, c in enumerate(clients)
        ]
    )

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 400}, statuses
    accepted = [r.json() for r in responses if r.status_code == 201]
    assert len(accepted) == CAPTURED // PART  # 14: every refund that fits is accepted, none more
    for rejected in (r for r in responses if r.status_code == 400):
        assert rejected.json()["error"]["code"] == "amount_too_large"
    stored = Refund.objects.filter(payment__public_id=payment["id"])
    assert sum(r.amount for r in stored) == len(accepted) * PART <= CAPTURED
    assert stored.count() == len(accepted)
    assert Payment.objects.get(public_id=payment["id"]).amount_received == CAPTURED


@pytest.mark.django_db(transaction=True)
def test_one_refund_request_sent_many_times_at_once_refunds_once(make_client):
    """The key is stored with the refund, in its statement: the requests that find it taken replay or wait."""
    shop = make_client("shop-refund-same-key")
    payment = shop.post(
        "/api/v1/payments/",
        {"amount": CAPTURED, "currency": "usd", "customer_id": "c", "payment_method": "pm_card_visa", "confirm": True},
        format="json",
        HTTP_IDEMPOTENCY_KEY="same-key-pay",
    ).json()
    path = f"/api/v1/payments/{payment['id']}/refunds/"
    clients = [client_for(shop.user) for _ in range(8)]

    responses = run_in_threads(
        [lambda c=c: c.post(path, {"amount": PART}, format="json", HTTP_IDEMPOTENCY_KEY="one-refund") for c in clients]
    )

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 409}, statuses  # 409: the first was still running when one came (key in use)
    created = [r.json() for r in responses if r.status_code == 201]
    assert created
    assert all(body == created[0] for body in created)  # every 201 is the one refund, replayed
    for busy in (r for r in responses if r.status_code == 409):
        assert busy.json()["error"]["code"] == "idempotency_key_in_use"
    assert Refund.objects.filter(payment__public_id=payment["id"]).count() == 1
    assert shop.post(path, {"amount": PART}, format="json", HTTP_IDEMPOTENCY_KEY="one-refund").json() == created[0]
