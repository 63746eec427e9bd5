"""Refunds through the API: partial, multiple, full by default, per currency, and what is refused."""

import pytest

from events.models import Event
from payments.models import IdempotencyKey, Payment
from refunds.models import Refund
from refunds.services import refund_submit

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tasks_inline")]


def _error(response):
    return response.json()["error"]


def test_partial_refund_succeeds_and_counts_on_the_payment(
    captured_payment, refund, storefront, simulator, django_capture_on_commit_callbacks
):
    payment = captured_payment(10_000)

    with django_capture_on_commit_callbacks(execute=True):
        response = refund(payment["id"], amount=2500, reason="requested_by_customer", metadata={"rma": "r1"})

    assert response.status_code == 201
    body = response.json()
    assert body["id"].startswith("re_")
    assert body["object"] == "refund"
    assert body["payment"] == payment["id"]
    assert (body["amount"], body["currency"], body["status"]) == (2500, "usd", "pending")
    assert body["reason"] == "requested_by_customer"
    assert body["metadata"] == {"rma": "r1"}
    refreshed = storefront.get(f"/api/v1/refunds/{body['id']}/").json()
    assert refreshed["status"] == "succeeded"
    after = storefront.get(f"/api/v1/payments/{payment['id']}/").json()
    assert after["amount_refunded"] == 2500
    assert after["status"] == "partially_refunded"
    types = list(Event.objects.filter(subject_id=payment["id"]).values_list("type", flat=True))
    assert types[-3:] == ["refund.created", "refund.succeeded", "payment.refunded"]
    assert simulator.performed_count("create_refund") == 1


def test_multiple_partial_refunds_then_the_rest_by_default(
    captured_payment, refund, storefront, django_capture_on_commit_callbacks
):
    payment = captured_payment(10_000)

    with django_capture_on_commit_callbacks(execute=True):
        first = refund(payment["id"], amount=3000)
    with django_capture_on_commit_callbacks(execute=True):
        second = refund(payment["id"], amount=2000)
    with django_capture_on_commit_callbacks(execute=True):
        rest = refund(payment["id"])
    nothing_left = refund(payment["id"])

    assert [first.status_code, second.status_code, rest.status_code] == [201, 201, 201]
    assert rest.json()["amount"] == 5000
    final = storefront.get(f"/api/v1/payments/{payment['id']}/").json()
    assert final["amount_refunded"] == 10_000
    assert final["status"] == "refunded"
    assert nothing_left.status_code == 409
    listed = storefront.get(f"/api/v1/payments/{payment['id']}/refunds/").json()["results"]
    assert [r["amount"] for r in listed] == [5000, 2000, 3000]


@pytest.mark.parametrize(("currency", "amount", "part"), [("jpy", 5000, 1200), ("kwd", 15_000, 2_500)])
def test_refunds_in_zero_and_three_decimal_currencies(
    captured_payment, refund, storefront, django_capture_on_commit_callbacks, currency, amount, part
):
    payment = captured_payment(amount, currency)

    with django_capture_on_commit_callbacks(execute=True):
        partial = refund(payment["id"], amount=part)
    with django_capture_on_commit_callbacks(execute=True):
        rest = refund(payment["id"])

    assert partial.json()["currency"] == currency
    assert rest.json()["amount"] == amount - part
    final = storefront.get(f"/api/v1/payments/{payment['id']}/").json()
    assert (final["status"], final["amount_refunded"]) == ("refunded", amount)


def test_over_refund_is_400_and_creates_nothing(captured_payment, refund, simulator):
    payment = captured_payment(10_000)

    response = refund(payment["id"], amount=10_001)

    assert response.status_code == 400
    assert _error(response)["code"] == "amount_too_large"
    assert _error(response)["param"] == "amount"
    assert Refund.objects.count() == 0
    assert simulator.call_count("create_refund") == 0


def test_pending_refunds_count_against_what_is_left(captured_payment, refund):
    payment = captured_payment(10_000)
    refund(payment["id"], amount=6000)  # stays pending: its submission never runs here

    response = refund(payment["id"], amount=4001)

    assert response.status_code == 400
    assert _error(response)["code"] == "amount_too_large"
    assert Refund.objects.get().status == "pending"


@pytest.mark.parametrize("kind", ["uncaptured", "canceled", "failed"])
def test_refund_of_a_payment_that_was_not_captured_is_409(storefront, refund, kind):
    body = {"amount": 5000, "currency": "usd", "customer_id": "c"}
    if kind == "uncaptured":
        body |= {"payment_method": "pm_card_visa", "capture_method": "manual", "confirm": True}
    if kind == "failed":
        body |= {"payment_method": "pm_card_chargeDeclined", "confirm": True}
    storefront.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY=f"p-{kind}")
    payment = {"id": Payment.objects.get().public_id}
    if kind == "canceled":
        storefront.post(f"/api/v1/payments/{payment['id']}/cancel/", {}, format="json")

    response = refund(payment["id"], amount=100)

    assert response.status_code == 409
    assert _error(response)["code"] == "payment_unexpected_state"
    assert Refund.objects.count() == 0


def test_refund_create_is_replayed_and_a_different_amount_is_422(captured_payment, refund):
    payment = captured_payment(10_000)

    first = refund(payment["id"], key="rk-1", amount=1000)
    again = refund(payment["id"], key="rk-1", amount=1000)
    other = refund(payment["id"], key="rk-1", amount=2000)

    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert other.status_code == 422
    assert _error(other)["code"] == "idempotency_key_reused"
    assert Refund.objects.count() == 1


def test_refund_needs_an_idempotency_key(captured_payment, storefront):
    payment = captured_payment()

    response = storefront.post(f"/api/v1/payments/{payment['id']}/refunds/", {"amount": 100}, format="json")

    assert response.status_code == 400
    assert _error(response)["code"] == "idempotency_key_missing"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"amount": 0}, "parameter_invalid"),
        ({"amount": "100"}, "parameter_invalid"),
        ({"reason": "changed_mind"}, "parameter_invalid"),
        ({"currency": "usd"}, "parameter_invalid"),
        ({"metadata": {"card": "4242424242424242"}}, "card_data_not_allowed"),
    ],
)
def test_invalid_refund_bodies_are_400(captured_payment, refund, body, code):
    payment = captured_payment()

    response = refund(payment["id"], **body)

    assert response.status_code == 400
    assert _error(response)["code"] == code
    assert Refund.objects.count() == 0


def test_storefronts_are_isolated_and_finance_refunds_any(
    captured_payment, refund, make_client, finance, django_capture_on_commit_callbacks
):
    payment = captured_payment(10_000)
    mine = refund(payment["id"], amount=100)
    other = make_client("storefront-b")

    their_create = refund(payment["id"], client=other, amount=100)
    their_list = other.get(f"/api/v1/payments/{payment['id']}/refunds/")
    their_get = other.get(f"/api/v1/refunds/{mine.json()['id']}/")
    their_all = other.get("/api/v1/refunds/").json()["results"]
    with django_capture_on_commit_callbacks(execute=True):
        by_finance = refund(payment["id"], client=finance, amount=200)
    finance_all = finance.get("/api/v1/refunds/").json()["results"]

    assert [their_create.status_code, their_list.status_code, their_get.status_code] == [404, 404, 404]
    assert their_all == []
    assert by_finance.status_code == 201
    assert Refund.objects.get(public_id=by_finance.json()["id"]).requested_by == finance.user
    assert {r["id"] for r in finance_all} == {mine.json()["id"], by_finance.json()["id"]}


def test_list_all_filters_by_status(captured_payment, refund, storefront, django_capture_on_commit_callbacks):
    payment = captured_payment(10_000)
    with django_capture_on_commit_callbacks(execute=True):
        done = refund(payment["id"], amount=200).json()
    pending = refund(payment["id"], amount=100).json()  # not submitted yet: its commit's trigger has not run

    succeeded = storefront.get("/api/v1/refunds/?status=succeeded").json()["results"]
    waiting = storefront.get("/api/v1/refunds/?status=pending").json()["results"]

    assert [r["id"] for r in succeeded] == [done["id"]]
    assert [r["id"] for r in waiting] == [pending["id"]]


def test_submitting_twice_refunds_once(captured_payment, refund, simulator):
    payment = captured_payment(10_000)
    created = refund(payment["id"], amount=1000).json()
    refund_id = Refund.objects.get(public_id=created["id"]).pk

    refund_submit(refund_id=refund_id)
    refund_submit(refund_id=refund_id)

    assert simulator.performed_count("create_refund") == 1
    assert Payment.objects.get(public_id=payment["id"]).amount_refunded == 1000


def test_refund_create_is_rate_limited_per_client(captured_payment, refund, settings):
    payment = captured_payment(10_000)
    settings.RATELIMIT_WRITES = "2/m"  # a new rate: a new counter (the key holds the rate)

    statuses = [refund(payment["id"], amount=10).status_code for _ in range(3)]

    assert statuses == [201, 201, 429]


def test_a_refund_of_another_clients_payment_is_404_and_writes_nothing_not_even_the_key(
    captured_payment, refund, make_client
):
    """The payment is found by its lock in the refund's transaction: for another client no row matches (none is
    locked), the request is 404 like any other, and its key is freed (a 4xx stores nothing)."""
    payment = captured_payment(10_000)
    other = make_client("storefront-c")
    theirs = captured_payment(5_000, client=other)

    response = refund(payment["id"], client=other, key="their-key", amount=100)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "resource_missing"
    assert Refund.objects.count() == 0
    assert not IdempotencyKey.objects.filter(client=other.user, key="their-key").exists()
    assert refund(theirs["id"], client=other, key="their-key", amount=100).status_code == 201  # the key is free
    assert refund("pay_doesnotexist", client=other, amount=100).status_code == 404
