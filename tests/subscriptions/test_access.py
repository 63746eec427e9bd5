"""Object-level access: another storefront's subscriptions and invoices are 404 on every endpoint."""

import pytest

from subscriptions.models import Subscription
from tests.subscriptions.conftest import new_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def theirs(make_client, subscribe):
    other = make_client("storefront-b")
    sub = subscribe(client=other).json()
    return other, sub


def test_another_clients_subscription_and_invoice_are_404_everywhere(storefront, theirs):
    _, sub = theirs
    before = Subscription.objects.get(public_id=sub["id"])
    attempts = [
        storefront.get(f"/api/v1/subscriptions/{sub['id']}/"),
        storefront.patch(f"/api/v1/subscriptions/{sub['id']}/", {"quantity": 2}, format="json"),
        storefront.post(f"/api/v1/subscriptions/{sub['id']}/cancel/", {}, format="json"),
        storefront.delete(f"/api/v1/subscriptions/{sub['id']}/"),
        storefront.get(f"/api/v1/invoices/{sub['latest_invoice']}/"),
    ]
    for response in attempts:
        assert response.status_code == 404, response.json()
        assert response.json()["error"]["code"] == "resource_missing"
    assert storefront.get("/api/v1/subscriptions/").json()["results"] == []
    assert storefront.get("/api/v1/subscriptions/", {"customer_id": "cus_42"}).json()["results"] == []
    assert storefront.get("/api/v1/invoices/", {"subscription": sub["id"]}).json()["results"] == []
    assert storefront.get("/api/v1/invoices/").json()["results"] == []
    after = Subscription.objects.get(public_id=sub["id"])
    assert (after.status, after.quantity, after.cancel_at_period_end) == (before.status, 1, False)


def test_the_same_customer_id_is_another_customer_per_client(storefront, theirs, subscribe):
    other, sub = theirs
    mine = subscribe().json()
    assert mine["customer_id"] == sub["customer_id"] == "cus_42"
    rows = Subscription.objects.filter(public_id__in=[mine["id"], sub["id"]])
    assert len({row.customer_id for row in rows}) == 2
    assert [row["id"] for row in other.get("/api/v1/subscriptions/").json()["results"]] == [sub["id"]]


def test_another_clients_saved_method_is_refused(storefront, make_client, subscribe, saved_card):
    other = make_client("storefront-c")
    their_card = saved_card("cus_42", client=other)
    response = subscribe(payment_method=their_card["id"])
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "payment_method"
    assert not Subscription.objects.filter(client__username="storefront-a").exists()


def test_unauthenticated_requests_are_401(anon, prices):
    for response in (
        anon.get("/api/v1/subscriptions/"),
        anon.get("/api/v1/invoices/"),
        anon.post("/api/v1/subscriptions/", {}, format="json", HTTP_IDEMPOTENCY_KEY=new_key()),
        anon.post("/api/v1/test_helpers/advance_clock/", {"seconds": 1}, format="json"),
    ):
        assert response.status_code == 401
