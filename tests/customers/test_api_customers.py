"""The customers API through HTTP on PostgreSQL and the simulator: customers, setup intents, saved cards."""

import pytest

from customers.charging import SavedMethodsForPayments
from customers.models import Customer, CustomerGatewayToken, PaymentMethod
from events.models import Event
from gateways.simulator import SimulatorGateway
from payments.ports import SavedMethodRefused
from tests.customers.conftest import attach, list_methods, new_key, put_customer

pytestmark = pytest.mark.django_db


def _events(subject_id: str) -> list[str]:
    return list(Event.objects.filter(subject_id=subject_id).order_by("sequence").values_list("type", flat=True))


# --- customers ------------------------------------------------------------------------------------
def test_put_creates_the_customer_here_and_at_the_gateway(storefront, simulator):
    response = put_customer(storefront, "cus_42", email="ada@example.com", name="Ada", metadata={"tier": "gold"})

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["id"].startswith("cu_")
    assert (body["object"], body["customer_id"], body["email"], body["name"]) == (
        "customer",
        "cus_42",
        "ada@example.com",
        "Ada",
    )
    assert (body["metadata"], body["default_payment_method"], body["gateway"]) == ({"tier": "gold"}, None, "simulator")
    assert body["gateway_reference"].startswith("cus_sim_")
    at_gateway = simulator.retrieve_customer(reference=body["gateway_reference"])
    assert (at_gateway.email, at_gateway.name, at_gateway.metadata["customer_id"]) == (
        "ada@example.com",
        "Ada",
        body["id"],
    )
    assert _events(body["id"]) == ["customer.created"]
    assert storefront.get("/api/v1/customers/cus_42/").json() == body


def test_put_again_updates_here_and_at_the_gateway(storefront, simulator):
    created = put_customer(storefront, email="ada@example.com", name="Ada").json()

    response = put_customer(storefront, email="lovelace@example.com")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["email"], body["name"]) == (created["id"], "lovelace@example.com", "Ada")
    assert simulator.retrieve_customer(reference=body["gateway_reference"]).email == "lovelace@example.com"
    assert _events(body["id"]) == ["customer.created", "customer.updated"]
    assert SimulatorGateway.call_count("create_customer") == 1


def test_put_with_nothing_new_changes_nothing(storefront):
    created = put_customer(storefront, email="ada@example.com").json()

    again = put_customer(storefront, email="ada@example.com")

    assert again.status_code == 200
    assert again.json()["updated"] == created["updated"]
    assert _events(created["id"]) == ["customer.created"]
    assert SimulatorGateway.call_count("update_customer") == 0


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"email": "not-an-email"}, "email", "parameter_invalid"),
        ({"nickname": "x"}, "nickname", "parameter_invalid"),
        ({"metadata": {"k": 1}}, "metadata", "parameter_invalid"),
        ({"metadata": {"card": "4242 4242 4242 4242"}}, "metadata[card]", "card_data_not_allowed"),
        ({"name": "4000056655665556"}, "name", "card_data_not_allowed"),
        ({"default_payment_method": "pm_card_visa"}, "default_payment_method", "parameter_invalid"),
        ({"default_payment_method": "pmt_doesnotexist"}, "default_payment_method", "resource_missing"),
    ],
)
def test_put_refuses_invalid_bodies_and_stores_nothing(storefront, body, param, code):
    response = put_customer(storefront, **body)

    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    assert "4242" not in response.content.decode()
    assert "5556" not in response.content.decode()
    assert not Customer.objects.exists()
    assert SimulatorGateway.call_count("create_customer") == 0


def test_a_customer_id_with_control_characters_is_refused(storefront):
    response = storefront.put("/api/v1/customers/cus%0A42/", {}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "customer_id"
    assert not Customer.objects.exists()


def test_get_unknown_customer_is_404(storefront):
    response = storefront.get("/api/v1/customers/nobody/")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "resource_missing"


def test_finance_clients_cannot_use_the_customer_endpoints(finance, storefront, saved_card):
    method = saved_card()
    for response in (
        finance.get("/api/v1/customers/cus_42/"),
        finance.put("/api/v1/customers/cus_42/", {}, format="json"),
        finance.post("/api/v1/customers/cus_42/setup_intents/", {}, format="json"),
        finance.get("/api/v1/customers/cus_42/payment_methods/"),
        finance.delete(f"/api/v1/payment_methods/{method['id']}/"),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
    assert PaymentMethod.objects.get(public_id=method["id"]).status == "active"


# --- setup intents --------------------------------------------------------------------------------
def test_setup_intent_creates_the_customer_and_a_confirmed_setup_saves_the_card(storefront, simulator, deliver):
    response = storefront.post("/api/v1/customers/cus_7/setup_intents/", {}, format="json")

    assert response.status_code == 201, response.json()
    setup = response.json()
    assert (setup["object"], setup["status"], setup["customer_id"]) == (
        "setup_intent",
        "requires_payment_method",
        "cus_7",
    )
    assert setup["id"].startswith("seti_")
    assert setup["client_secret"].startswith(setup["id"])
    assert response["Cache-Control"] == "no-store"
    customer = Customer.objects.get(customer_id="cus_7")
    assert _events(customer.public_id) == ["customer.created"]

    # Stripe.js confirms it in the browser; Stripe then sends setup_intent.succeeded
    confirmed = simulator.confirm_setup_intent(reference=setup["id"], payment_method="pm_card_visa")
    assert confirmed.status == "succeeded"
    reference = CustomerGatewayToken.objects.get(customer=customer).reference
    deliver(_setup_succeeded(setup["id"], reference, confirmed.payment_method))

    methods = list_methods(storefront, "cus_7").json()["results"]
    assert [(m["gateway_reference"], m["card"]["brand"], m["card"]["last4"], m["status"]) for m in methods] == [
        (confirmed.payment_method, "visa", "4242", "active")
    ]


def _setup_succeeded(reference: str, customer: str, payment_method: str) -> dict:
    from tests.webhooks import payloads

    return payloads.event(
        "setup_intent.succeeded",
        {
            "id": reference,
            "object": "setup_intent",
            "status": "succeeded",
            "customer": customer,
            "payment_method": payment_method,
            "usage": "off_session",
            "created": 1700000000,
        },
    )


def test_setup_intent_with_an_idempotency_key_is_one_gateway_setup_intent(storefront):
    key = new_key()
    first = storefront.post("/api/v1/customers/cus_7/setup_intents/", {}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    again = storefront.post("/api/v1/customers/cus_7/setup_intents/", {}, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert SimulatorGateway.call_count("create_setup_intent") == 1


def test_setup_intent_refuses_a_body(storefront):
    response = storefront.post("/api/v1/customers/cus_7/setup_intents/", {"usage": "x"}, format="json")

    assert response.status_code == 400
    assert not Customer.objects.exists()


# --- attach ---------------------------------------------------------------------------------------
def test_attach_saves_a_cloned_card_with_only_its_safe_details(storefront, simulator):
    response = attach(storefront, "cus_42", "pm_card_mastercard")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["id"].startswith("pmt_")
    assert (body["object"], body["customer_id"], body["type"], body["status"], body["is_default"]) == (
        "payment_method",
        "cus_42",
        "card",
        "active",
        False,
    )
    assert body["gateway_reference"].startswith("pm_")
    assert body["gateway_reference"] != "pm_card_mastercard"
    card = body["card"]
    assert (card["brand"], card["last4"]) == ("mastercard", "4444")
    assert 1 <= card["exp_month"] <= 12
    assert card["exp_year"] >= 2026
    assert set(card) == {"brand", "last4", "exp_month", "exp_year", "funding", "country", "fingerprint"}
    at_gateway = simulator.retrieve_payment_method(payment_method=body["gateway_reference"])
    token = CustomerGatewayToken.objects.get(customer__customer_id="cus_42")
    assert at_gateway.customer_reference == token.reference
    assert _events(body["id"]) == ["payment_method.attached"]


@pytest.mark.parametrize(
    ("token", "code"),
    [("pm_card_chargeDeclined", "card_declined"), ("pm_card_chargeDeclinedExpiredCard", "expired_card")],
)
def test_a_card_the_gateway_refuses_to_save_is_402_with_its_code(storefront, token, code):
    response = attach(storefront, "cus_42", token)

    assert response.status_code == 402
    assert (response.json()["error"]["type"], response.json()["error"]["code"]) == ("card_error", code)
    assert not PaymentMethod.objects.exists()


def test_an_unknown_token_is_400_parameter_invalid(storefront):
    response = attach(storefront, "cus_42", "pm_nosuchtoken")

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("parameter_invalid", "payment_method")
    assert not PaymentMethod.objects.exists()


def test_attach_with_an_idempotency_key_replays_the_first_answer(storefront):
    key = new_key()
    first = attach(storefront, key=key)
    again = attach(storefront, key=key)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert attach(storefront, key=key, set_default=True).status_code == 422
    assert PaymentMethod.objects.count() == 1


# --- default switching ----------------------------------------------------------------------------
def test_default_switching_and_the_list_order(storefront, saved_card, simulator):
    visa = saved_card(token="pm_card_visa", set_default=True)
    mastercard = saved_card(token="pm_card_mastercard")
    amex = saved_card(token="pm_card_amex")

    assert visa["is_default"] is True
    assert [m["id"] for m in list_methods(storefront).json()["results"]] == [visa["id"], amex["id"], mastercard["id"]]

    switched = put_customer(storefront, default_payment_method=mastercard["id"])
    assert switched.status_code == 200
    assert switched.json()["default_payment_method"] == mastercard["id"]
    listed = list_methods(storefront).json()["results"]
    assert [(m["id"], m["is_default"]) for m in listed] == [
        (mastercard["id"], True),
        (amex["id"], False),
        (visa["id"], False),
    ]
    reference = switched.json()["gateway_reference"]
    at_gateway = simulator.retrieve_customer(reference=reference)
    assert at_gateway.default_payment_method == mastercard["gateway_reference"]

    unset = put_customer(storefront, default_payment_method=None)
    assert unset.json()["default_payment_method"] is None
    assert simulator.retrieve_customer(reference=reference).default_payment_method == ""


def test_another_customers_method_cannot_be_the_default(storefront, saved_card):
    put_customer(storefront, "cus_1")
    other = saved_card("cus_2")

    response = put_customer(storefront, "cus_1", default_payment_method=other["id"])

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "default_payment_method"
    assert Customer.objects.get(customer_id="cus_1").default_payment_method is None


# --- detach ---------------------------------------------------------------------------------------
def test_detach_unsets_the_default_and_the_method_can_no_longer_be_charged(storefront, saved_card, simulator):
    method = saved_card(set_default=True)
    saved = SavedMethodsForPayments()
    assert saved.method_for_charge(client=storefront.user, customer_id="cus_42", payment_method=method["id"])

    response = storefront.delete(f"/api/v1/payment_methods/{method['id']}/")

    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["is_default"]) == ("detached", False)
    assert storefront.get("/api/v1/customers/cus_42/").json()["default_payment_method"] is None
    assert list_methods(storefront).json()["results"] == []
    assert simulator.retrieve_payment_method(payment_method=method["gateway_reference"]).customer_reference == ""
    calls_before = SimulatorGateway.call_count("retrieve_payment_method")
    with pytest.raises(SavedMethodRefused):
        saved.method_for_charge(client=storefront.user, customer_id="cus_42", payment_method=method["id"])
    assert SimulatorGateway.call_count("retrieve_payment_method") == calls_before
    assert _events(method["id"]) == ["payment_method.attached", "payment_method.detached"]

    again = storefront.delete(f"/api/v1/payment_methods/{method['id']}/")
    assert again.status_code == 200
    assert again.json()["status"] == "detached"
    assert SimulatorGateway.call_count("detach_payment_method") == 1


def test_a_token_can_be_saved_again_after_its_method_was_detached(storefront, saved_card):
    first = saved_card()
    storefront.delete(f"/api/v1/payment_methods/{first['id']}/")

    second = saved_card()

    assert second["id"] != first["id"]
    assert second["gateway_reference"] != first["gateway_reference"]
    assert [m["id"] for m in list_methods(storefront).json()["results"]] == [second["id"]]


# --- saved methods for payments (the port) --------------------------------------------------------
def test_method_for_charge_refuses_what_is_not_this_customers_without_a_gateway_call(make_client, saved_card):
    shop = make_client("shop-a")
    other_shop = make_client("shop-b")
    mine = saved_card("cus_1", client=shop)
    saved_card("cus_2", client=shop)
    saved = SavedMethodsForPayments()
    calls = {op: SimulatorGateway.call_count(op) for op in ("retrieve_payment_method", "retrieve_customer")}

    found = saved.method_for_charge(client=shop.user, customer_id="cus_1", payment_method=mine["id"])
    assert found.payment_method_reference == mine["gateway_reference"]
    assert found.customer_reference == CustomerGatewayToken.objects.get(customer__customer_id="cus_1").reference
    assert found.card_fingerprint == mine["card"]["fingerprint"]
    for client, customer_id, method in (
        (shop.user, "cus_2", mine["id"]),  # another customer's
        (other_shop.user, "cus_1", mine["id"]),  # another client's
        (shop.user, "cus_1", "pmt_unknown"),
    ):
        with pytest.raises(SavedMethodRefused):
            saved.method_for_charge(client=client, customer_id=customer_id, payment_method=method)
    assert {op: SimulatorGateway.call_count(op) for op in calls} == calls


def test_customer_for_saving_creates_the_customer_once(storefront):
    saved = SavedMethodsForPayments()

    first = saved.customer_for_saving(client=storefront.user, customer_id="cus_new")
    second = saved.customer_for_saving(client=storefront.user, customer_id="cus_new")

    assert first == second
    assert first.startswith("cus_sim_")
    assert Customer.objects.filter(customer_id="cus_new").count() == 1
    assert SimulatorGateway.call_count("create_customer") == 1


def test_saved_after_payment_records_the_card_once(storefront, simulator):
    saved = SavedMethodsForPayments()
    reference = saved.customer_for_saving(client=storefront.user, customer_id="cus_9")
    method = simulator.attach_payment_method(
        payment_method="pm_card_visa", customer_reference=reference, idempotency_key="test:attach"
    )

    saved.saved_after_payment(client=storefront.user, customer_id="cus_9", payment_method_reference=method.reference)
    saved.saved_after_payment(client=storefront.user, customer_id="cus_9", payment_method_reference=method.reference)

    assert list(PaymentMethod.objects.values_list("gateway_reference", "last4")) == [(method.reference, "4242")]
    assert Event.objects.filter(type="payment_method.attached").count() == 1
