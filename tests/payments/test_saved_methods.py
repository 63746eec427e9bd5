"""Payments with a customer's saved method (`pmt_…`), off session, and saving a card with `setup_future_usage` (#17).

Through the API on PostgreSQL and the simulator: the customers app saves the cards (its own tests cover how),
the payment core charges them through `payments.ports.SavedMethods`. A saved method that is not this
customer's never reaches the gateway: the simulator's intents are counted before and after.
"""

from datetime import UTC, datetime, timedelta

import pytest

from payments.models import Payment
from tests.conftest import new_key

pytestmark = pytest.mark.django_db


def _save(client, customer_id: str, token: str = "pm_card_visa") -> dict:  # noqa: S107 - a gateway token
    response = client.post(
        f"/api/v1/customers/{customer_id}/payment_methods/",
        {"payment_method": token},
        format="json",
        HTTP_IDEMPOTENCY_KEY=new_key(),
    )
    assert response.status_code == 201, response.content
    return response.json()


def _intents(simulator) -> int:
    now = datetime.now(UTC)
    return sum(
        1 for _ in simulator.list_intents(created_gte=now - timedelta(days=1), created_lt=now + timedelta(days=1))
    )


def test_a_saved_card_is_charged_on_session_by_its_pmt_id(storefront, create_payment, simulator):
    method = _save(storefront, "cus_saved")

    response = create_payment(customer_id="cus_saved", payment_method=method["id"], confirm=True)

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["payment_method"]) == ("succeeded", method["id"])
    payment = Payment.objects.get(public_id=body["id"])
    assert payment.gateway_payment_method == method["gateway_reference"]
    intent = simulator.retrieve_intent(reference=payment.gateway_reference)
    assert (intent.status, intent.payment_method) == ("succeeded", method["gateway_reference"])


def test_an_off_session_charge_of_a_saved_card_succeeds_without_the_customer(storefront, create_payment):
    method = _save(storefront, "cus_off")

    response = create_payment(customer_id="cus_off", payment_method=method["id"], confirm=True, off_session=True)

    assert (response.status_code, response.json()["status"]) == (201, "succeeded")
    assert Payment.objects.get(public_id=response.json()["id"]).off_session is True


def test_off_session_a_card_that_needs_authentication_is_402_and_the_payment_failed(storefront, create_payment):
    method = _save(storefront, "cus_3ds", "pm_card_authenticationRequired")

    response = create_payment(customer_id="cus_3ds", payment_method=method["id"], confirm=True, off_session=True)

    assert response.status_code == 402, response.content
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("card_error", "authentication_required")
    assert Payment.objects.get(customer_id="cus_3ds").status == "failed"


def test_a_saved_card_whose_charges_fail_is_declined(storefront, create_payment):
    method = _save(storefront, "cus_fail", "pm_card_chargeCustomerFail")

    response = create_payment(customer_id="cus_fail", payment_method=method["id"], confirm=True)

    assert (response.status_code, response.json()["error"]["code"]) == (402, "card_declined")


@pytest.mark.parametrize("whose", ["another customer", "another client", "detached", "unknown"])
def test_a_pmt_that_is_not_this_customers_is_400_and_never_reaches_the_gateway(
    storefront, make_client, create_payment, simulator, whose
):
    if whose == "another customer":
        method_id = _save(storefront, "cus_other")["id"]
    elif whose == "another client":
        method_id = _save(make_client("other-shop"), "cus_mine")["id"]
    elif whose == "detached":
        method_id = _save(storefront, "cus_mine")["id"]
        assert storefront.delete(f"/api/v1/payment_methods/{method_id}/").status_code == 200
    else:
        method_id = "pmt_doesnotexist"
    before = _intents(simulator)

    response = create_payment(customer_id="cus_mine", payment_method=method_id, confirm=True)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("parameter_invalid", "payment_method")
    assert _intents(simulator) == before
    assert not Payment.objects.filter(customer_id="cus_mine").exists()


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"payment_method": "pm_card_visa", "confirm": True, "off_session": True}, "off_session"),
        ({"payment_method": "pmt_x", "off_session": True}, "off_session"),
        ({"payment_method": "pmt_x", "setup_future_usage": "off_session"}, "setup_future_usage"),
        ({"payment_method": "pm_card_visa", "setup_future_usage": "sometimes"}, "setup_future_usage"),
        ({"payment_method": "pmt_", "confirm": True}, "payment_method"),
    ],
)
def test_off_session_and_setup_future_usage_are_validated(create_payment, body, param):
    response = create_payment(customer_id="cus_v", **body)

    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == param


def test_setup_future_usage_saves_the_card_once_the_payment_succeeds(storefront, create_payment):
    response = create_payment(
        customer_id="cus_new", payment_method="pm_card_mastercard", confirm=True, setup_future_usage="off_session"
    )

    assert (response.status_code, response.json()["status"]) == (201, "succeeded")
    methods = storefront.get("/api/v1/customers/cus_new/payment_methods/").json()["results"]
    assert [(m["card"]["brand"], m["card"]["last4"], m["status"]) for m in methods] == [
        ("mastercard", "4444", "active")
    ]
    again = create_payment(customer_id="cus_new", payment_method=methods[0]["id"], confirm=True, off_session=True)
    assert (again.status_code, again.json()["status"]) == (201, "succeeded")


def test_a_declined_payment_with_setup_future_usage_saves_nothing(storefront, create_payment):
    response = create_payment(
        customer_id="cus_dec", payment_method="pm_card_chargeDeclined", confirm=True, setup_future_usage="off_session"
    )

    assert response.status_code == 402
    listed = storefront.get("/api/v1/customers/cus_dec/payment_methods/")
    assert listed.status_code == 200
    assert listed.json()["results"] == []
