"""Customer and payment-method events go through the outbox without personal data (issue #20)."""

import json

import pytest

from events.models import Event
from tests.customers.conftest import put_customer

pytestmark = pytest.mark.django_db


def test_events_carry_ids_and_card_basics_but_no_personal_data(storefront, saved_card):
    put_customer(storefront, email="ada@example.com", name="Ada Lovelace", metadata={"phone": "+44 20 7946 0000"})
    first = saved_card(set_default=True)
    second = saved_card(token="pm_card_mastercard")
    put_customer(storefront, email="lovelace@example.com", default_payment_method=second["id"])
    storefront.delete(f"/api/v1/payment_methods/{first['id']}/")

    events = list(Event.objects.order_by("sequence"))

    assert [e.type for e in events] == [
        "customer.created",
        "payment_method.attached",
        "customer.updated",
        "payment_method.attached",
        "customer.updated",
        "payment_method.detached",
    ]
    for event in events:
        text = json.dumps(event.data)
        for personal in ("ada@example.com", "lovelace@example.com", "Ada Lovelace", "+44 20", "email", "name"):
            assert personal not in text, (event.type, text)
        assert event.client_id == storefront.user.pk
    customer = events[0].data
    assert set(customer) == {
        "id",
        "object",
        "customer_id",
        "default_payment_method",
        "gateway",
        "gateway_reference",
        "created",
        "updated",
    }
    assert (events[0].subject_type, events[0].subject_id) == ("customer", customer["id"])
    method = events[1].data
    assert (events[1].subject_type, events[1].subject_id) == ("payment_method", first["id"])
    assert method["card"] == {"brand": "visa", "last4": "4242", "exp_month": first["card"]["exp_month"],
                              "exp_year": first["card"]["exp_year"]}  # fmt: skip
    assert events[5].data["status"] == "detached"


def test_the_feed_shows_a_client_its_customer_events(storefront, make_client):
    put_customer(storefront, email="ada@example.com")
    other = make_client("other-shop")
    put_customer(other, "cus_other")

    feed = storefront.get("/api/v1/events/", {"type": "customer.created"}).json()["results"]

    assert [(e["type"], e["data"]["object"]["customer_id"]) for e in feed] == [("customer.created", "cus_42")]
    assert "ada@example.com" not in json.dumps(feed)
