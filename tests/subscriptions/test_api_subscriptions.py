"""The subscriptions API on the simulator: create (charged at once, trial, decline), read, change, cancel."""

import pytest

from events.models import Event
from payments.models import Payment
from subscriptions.models import Invoice, Subscription, SubscriptionStatusChange
from tests.subscriptions.conftest import new_key

pytestmark = pytest.mark.django_db


def test_create_charges_the_first_invoice_as_a_payment(storefront, subscribe):
    response = subscribe(metadata={"plan": "box"}, quantity=2)
    assert response.status_code == 201, response.json()
    sub = response.json()
    assert sub["id"].startswith("sub_")
    assert sub["object"] == "subscription"
    assert sub["status"] == "active"
    assert sub["customer_id"] == "cus_42"
    assert sub["price"] == "price_basic_monthly"
    assert sub["quantity"] == 2
    assert sub["metadata"] == {"plan": "box"}
    assert sub["default_payment_method"].startswith("pmt_")
    assert sub["gateway_reference"].startswith("sub_")
    assert sub["gateway_reference"] != sub["id"]
    assert sub["latest_invoice"].startswith("in_")
    assert sub["trial_start"] is None

    invoice = storefront.get(f"/api/v1/invoices/{sub['latest_invoice']}/").json()
    assert invoice["status"] == "paid"
    assert invoice["subscription"] == sub["id"]
    assert (invoice["amount_due"], invoice["amount_paid"], invoice["amount_remaining"]) == (1800, 1800, 0)
    assert invoice["currency"] == "usd"
    assert invoice["lines"][0]["price"] == "price_basic_monthly"
    assert invoice["lines"][0]["quantity"] == 2
    assert invoice["payment"].startswith("pay_")
    payment = storefront.get(f"/api/v1/payments/{invoice['payment']}/").json()
    assert (payment["amount"], payment["currency"], payment["status"]) == (1800, "usd", "succeeded")
    assert payment["invoice"] == invoice["id"]

    types = list(Event.objects.filter(subject_id=sub["id"]).values_list("type", flat=True))
    assert types == ["subscription.created"]
    invoice_types = set(Event.objects.filter(subject_id=invoice["id"]).values_list("type", flat=True))
    assert invoice_types == {"invoice.created", "invoice.paid"}
    created = Event.objects.get(subject_id=sub["id"])
    assert "metadata" not in created.data["object"]
    row = Subscription.objects.get(public_id=sub["id"])
    assert list(row.status_changes.values_list("from_status", "to_status")) == [("", "active")]


def test_trial_starts_trialing_without_a_charge(storefront, subscribe):
    response = subscribe(trial_days=14)
    assert response.status_code == 201, response.json()
    sub = response.json()
    assert sub["status"] == "trialing"
    assert sub["trial_start"] is not None
    assert sub["trial_end"] == sub["current_period_end"]
    assert not Payment.objects.exists()
    invoices = storefront.get("/api/v1/invoices/", {"subscription": sub["id"]}).json()["results"]
    assert all(invoice["amount_paid"] == 0 for invoice in invoices)


def test_decline_on_the_first_invoice_is_402_and_the_subscription_incomplete(storefront, subscribe):
    key = new_key()
    response = subscribe(payment_method="pm_card_chargeCustomerFail", key=key)
    assert response.status_code == 402, response.json()
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("card_error", "card_declined")
    sub = Subscription.objects.get()
    assert sub.status == "incomplete"
    assert sub.public_id in error["message"]
    invoice = Invoice.objects.get(subscription=sub)
    assert invoice.status == "open"
    assert invoice.attempt_count == 1
    assert invoice.payment is not None
    # the gateway retries the invoice with the same intent until it expires: the payment stays open, declined
    assert (invoice.payment.status, invoice.payment.failure_code) == ("requires_confirmation", "card_declined")
    listed = storefront.get("/api/v1/subscriptions/", {"status": "incomplete"}).json()["results"]
    assert [row["id"] for row in listed] == [sub.public_id]

    again = subscribe(payment_method="pm_card_chargeCustomerFail", key=key)
    assert again.status_code == 402
    assert again["Idempotent-Replayed"] == "true"
    assert Subscription.objects.count() == 1


def test_idempotency_key_is_required_and_replays(storefront, subscribe, prices):
    missing = storefront.post(
        "/api/v1/subscriptions/", {"customer_id": "cus_42", "price": "price_basic_monthly"}, format="json"
    )
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "idempotency_key_missing"
    key = new_key()
    first = subscribe(key=key)
    second = subscribe(key=key)
    assert second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert Subscription.objects.count() == 1
    assert Payment.objects.count() == 1
    reused = subscribe(key=key, quantity=3)
    assert reused.status_code == 422


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"price": "price_nope"}, "price"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": 10_001}, "quantity"),
        ({"quantity": "2"}, "quantity"),
        ({"trial_days": 731}, "trial_days"),
        ({"payment_method": "card_4242"}, "payment_method"),
        ({"payment_method": "pmt_doesnotexist"}, "payment_method"),
        ({"surprise": 1}, "surprise"),
        ({"metadata": {"k": 1}}, "metadata"),
    ],
)
def test_invalid_creates_are_400_and_charge_nothing(subscribe, body, param):
    response = subscribe(**body)
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "parameter_invalid"
    assert error["param"] == param
    assert not Subscription.objects.exists()
    assert not Payment.objects.exists()


def test_an_inactive_price_is_400(subscribe, prices):
    from subscriptions.models import Price

    Price.objects.filter(reference="price_pro_monthly").update(active=False)
    response = subscribe(price="price_pro_monthly")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "price"


def test_a_saved_method_is_charged(storefront, subscribe, saved_card):
    method = saved_card("cus_7")
    response = subscribe(customer_id="cus_7", payment_method=method["id"])
    assert response.status_code == 201, response.json()
    assert response.json()["default_payment_method"] == method["id"]
    other = saved_card("cus_8")
    refused = subscribe(customer_id="cus_7", payment_method=other["id"])
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "payment_method"


def test_list_filters_and_unknown_parameters(storefront, subscribe):
    first = subscribe(customer_id="cus_1").json()
    second = subscribe(customer_id="cus_2", trial_days=7).json()
    listed = storefront.get("/api/v1/subscriptions/").json()
    assert [row["id"] for row in listed["results"]] == [second["id"], first["id"]]
    by_customer = storefront.get("/api/v1/subscriptions/", {"customer_id": "cus_1"}).json()["results"]
    assert [row["id"] for row in by_customer] == [first["id"]]
    trialing = storefront.get("/api/v1/subscriptions/", {"status": "trialing"}).json()["results"]
    assert [row["id"] for row in trialing] == [second["id"]]
    page = storefront.get("/api/v1/subscriptions/", {"page_size": 1}).json()
    assert len(page["results"]) == 1
    assert page["next"]
    for query in ({"customer": "cus_1"}, {"status": ""}, {"status": "sleeping"}, {"page_size": 0}):
        response = storefront.get("/api/v1/subscriptions/", query)
        assert response.status_code == 400, query
        assert response.json()["error"]["code"] == "parameter_invalid"
    invoices = storefront.get("/api/v1/invoices/", {"customer_id": "cus_1", "status": "paid"}).json()["results"]
    assert [row["subscription"] for row in invoices] == [first["id"]]
    assert storefront.get("/api/v1/invoices/", {"subscription": ""}).status_code == 400
    assert storefront.get("/api/v1/invoices/", {"sub": first["id"]}).status_code == 400


def test_upgrade_with_proration(storefront, subscribe, advance):
    sub = subscribe().json()
    advance(15 * 86_400)
    response = storefront.patch(f"/api/v1/subscriptions/{sub['id']}/", {"price": "price_pro_monthly"}, format="json")
    assert response.status_code == 200, response.json()
    changed = response.json()
    assert changed["price"] == "price_pro_monthly"
    assert changed["current_period_start"] == sub["current_period_start"]
    assert Event.objects.filter(subject_id=sub["id"], type="subscription.updated").exists()
    advance(16 * 86_400)  # past the period end: the renewal invoice carries the proration
    renewal = storefront.get(f"/api/v1/subscriptions/{sub['id']}/").json()
    assert renewal["current_period_start"] > sub["current_period_start"]
    invoice = storefront.get(f"/api/v1/invoices/{renewal['latest_invoice']}/").json()
    amounts = [line["amount"] for line in invoice["lines"]]
    assert 2900 in amounts
    credit = [amount for amount in amounts if amount < 0]
    charge = [amount for amount in amounts if 0 < amount < 2900]
    assert credit, amounts
    assert charge, amounts
    assert invoice["amount_due"] == sum(amounts)
    assert invoice["status"] == "paid"
    payment = Payment.objects.get(public_id=invoice["payment"])
    assert payment.amount == invoice["amount_due"]


def test_patch_quantity_metadata_and_payment_method(storefront, subscribe):
    sub = subscribe().json()
    response = storefront.patch(
        f"/api/v1/subscriptions/{sub['id']}/",
        {"quantity": 3, "metadata": {"seat": "x"}, "payment_method": "pm_card_mastercard"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["quantity"], body["metadata"]) == (3, {"seat": "x"})
    assert body["default_payment_method"] != sub["default_payment_method"]
    assert storefront.patch(f"/api/v1/subscriptions/{sub['id']}/", {"quantity": 0}, format="json").status_code == 400
    other_currency = storefront.patch(
        f"/api/v1/subscriptions/{sub['id']}/", {"price": "price_jpy_monthly"}, format="json"
    )
    assert other_currency.status_code == 400
    assert other_currency.json()["error"]["param"] == "price"
    only_metadata = storefront.patch(f"/api/v1/subscriptions/{sub['id']}/", {"metadata": {}}, format="json")
    assert only_metadata.json()["metadata"] == {}


def test_cancel_at_period_end_then_canceled_when_it_ends(storefront, subscribe, advance):
    sub = subscribe().json()
    response = storefront.post(f"/api/v1/subscriptions/{sub['id']}/cancel/", {"at_period_end": True}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["cancel_at_period_end"]) == ("active", True)
    advance(32 * 86_400)
    ended = storefront.get(f"/api/v1/subscriptions/{sub['id']}/").json()
    assert ended["status"] == "canceled"
    assert ended["canceled_at"] is not None
    assert Invoice.objects.filter(subscription__public_id=sub["id"]).count() == 1
    assert Event.objects.filter(subject_id=sub["id"], type="subscription.canceled").count() == 1
    again = storefront.post(f"/api/v1/subscriptions/{sub['id']}/cancel/", {}, format="json")
    assert again.status_code == 409
    error = again.json()["error"]
    assert (error["type"], error["code"]) == ("state_error", "subscription_unexpected_state")


def test_cancel_now_and_delete(storefront, subscribe):
    first = subscribe(customer_id="cus_1").json()
    canceled = storefront.post(f"/api/v1/subscriptions/{first['id']}/cancel/", {}, format="json")
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    second = subscribe(customer_id="cus_2").json()
    deleted = storefront.delete(f"/api/v1/subscriptions/{second['id']}/")
    assert deleted.status_code == 200, deleted.json()
    assert deleted.json()["status"] == "canceled"
    twice = storefront.delete(f"/api/v1/subscriptions/{second['id']}/")
    assert twice.status_code == 409
    error = twice.json()["error"]
    assert (error["type"], error["code"]) == ("state_error", "subscription_unexpected_state")
    history = SubscriptionStatusChange.objects.filter(subscription__public_id=second["id"])
    assert list(history.values_list("to_status", flat=True)) == ["active", "canceled"]
    assert Event.objects.filter(subject_id=second["id"], type="subscription.canceled").count() == 1
    patched = storefront.patch(f"/api/v1/subscriptions/{second['id']}/", {"quantity": 2}, format="json")
    assert patched.status_code == 409


def test_finance_reads_but_cannot_subscribe(finance, subscribe):
    sub = subscribe().json()
    assert finance.get(f"/api/v1/subscriptions/{sub['id']}/").status_code == 200
    assert finance.get(f"/api/v1/invoices/{sub['latest_invoice']}/").status_code == 200
    refused = finance.post(
        "/api/v1/subscriptions/",
        {"customer_id": "c", "price": "price_basic_monthly"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=new_key(),
    )
    assert refused.status_code == 403
    assert finance.post(f"/api/v1/subscriptions/{sub['id']}/cancel/", {}, format="json").status_code == 403


def test_a_card_the_gateway_will_not_save_is_402_and_an_unknown_token_400(subscribe):
    declined = subscribe(payment_method="pm_card_chargeDeclined")
    assert declined.status_code == 402, declined.json()
    assert declined.json()["error"]["code"] == "card_declined"
    unknown = subscribe(payment_method="pm_card_nosuchthing")
    assert unknown.status_code == 400, unknown.json()
    assert unknown.json()["error"]["param"] == "payment_method"
    assert not Subscription.objects.exists()
    assert not Payment.objects.exists()
