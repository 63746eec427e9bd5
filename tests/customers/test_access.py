"""Object-level access: a storefront reaches only its own customers and methods; another's is 404 on every endpoint."""

import pytest

from customers.models import Customer, PaymentMethod
from events.models import Event
from gateways.simulator import SimulatorGateway
from tests.customers.conftest import attach, put_customer

pytestmark = pytest.mark.django_db


def test_another_clients_customer_and_methods_are_404_on_every_endpoint(make_client, saved_card):
    owner = make_client("shop-owner")
    intruder = make_client("shop-intruder")
    put_customer(owner, "cus_shared", email="ada@example.com")
    method = saved_card("cus_shared", client=owner, set_default=True)
    last_event = Event.objects.filter(client=owner.user).order_by("-sequence").values_list("sequence", flat=True)[0]
    calls_before = SimulatorGateway.call_count("detach_payment_method")

    assert intruder.get("/api/v1/customers/cus_shared/").status_code == 404
    assert intruder.get("/api/v1/customers/cus_shared/payment_methods/").status_code == 404
    detach = intruder.delete(f"/api/v1/payment_methods/{method['id']}/")
    assert detach.status_code == 404
    assert detach.json()["error"]["code"] == "resource_missing"

    # The same storefront id is another customer of the intruder's own: it never touches the owner's.
    assert put_customer(intruder, "cus_shared", email="eve@example.com").status_code == 201
    attached = attach(intruder, "cus_shared", "pm_card_mastercard")
    assert attached.status_code == 201
    setup = intruder.post("/api/v1/customers/cus_shared/setup_intents/", {}, format="json")
    assert setup.status_code == 201

    owner_customer = Customer.objects.get(client=owner.user, customer_id="cus_shared")
    assert (owner_customer.email, owner_customer.default_payment_method.public_id) == ("ada@example.com", method["id"])
    assert PaymentMethod.objects.get(public_id=method["id"]).status == "active"
    assert [m["id"] for m in owner.get("/api/v1/customers/cus_shared/payment_methods/").json()["results"]] == [
        method["id"]
    ]
    assert [m["id"] for m in intruder.get("/api/v1/customers/cus_shared/payment_methods/").json()["results"]] == [
        attached.json()["id"]
    ]
    assert SimulatorGateway.call_count("detach_payment_method") == calls_before
    assert not Event.objects.filter(client=owner.user, sequence__gt=last_event).exists()


def test_anonymous_requests_are_401(anon):
    for response in (
        anon.get("/api/v1/customers/cus_1/"),
        anon.put("/api/v1/customers/cus_1/", {}, format="json"),
        anon.post("/api/v1/customers/cus_1/setup_intents/", {}, format="json"),
        anon.get("/api/v1/customers/cus_1/payment_methods/"),
        anon.post("/api/v1/customers/cus_1/payment_methods/", {"payment_method": "pm_card_visa"}, format="json"),
        anon.delete("/api/v1/payment_methods/pmt_x/"),
    ):
        assert response.status_code == 401
    assert not Customer.objects.exists()
