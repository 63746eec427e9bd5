"""The Stripe gateway's customers, setup intents and saved methods, on localstripe (our launcher)."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from gateways.base import Declined, PaymentMethodResult, Permanent
from gateways.stripe import StripeGateway
from tests.gateways.conftest import LocalStripe


def _customer(gateway: StripeGateway, key: str = "cust_1"):
    return gateway.create_customer(
        email="ada@example.com", name="Ada", metadata={"customer_id": key}, idempotency_key=key
    )


def _attach(gateway: StripeGateway, customer: str, card: str = "pm_card_visa", key: str = "att_1"):
    return gateway.attach_payment_method(payment_method=card, customer_reference=customer, idempotency_key=key)


def _charge(gateway: StripeGateway, key: str, payment_method: str, **overrides):
    params = {
        "amount": 1500,
        "currency": "eur",
        "capture_method": "automatic",
        "payment_method": payment_method,
        "confirm": True,
        "metadata": {},
        "description": "",
        "idempotency_key": key,
    }
    return gateway.create_intent(**(params | overrides))


def _update(gateway: StripeGateway, reference: str, key: str, **fields):
    params = {"email": "ada@example.com", "name": "Ada", "metadata": {}, "default_payment_method": None}
    return gateway.update_customer(reference=reference, idempotency_key=key, **(params | fields))


def test_customer_create_update_retrieve_delete(gateway):
    created = _customer(gateway)
    again = _customer(gateway)  # the same key: one customer

    assert created.reference.startswith("cus_")
    assert again == created
    assert (created.email, created.name, created.metadata) == ("ada@example.com", "Ada", {"customer_id": "cust_1"})
    assert gateway.retrieve_customer(reference=created.reference) == created
    updated = _update(gateway, created.reference, "u1", email="grace@example.com", metadata={"tier": "gold"})
    assert (updated.email, updated.metadata) == ("grace@example.com", {"customer_id": "cust_1", "tier": "gold"})

    deleted = gateway.delete_customer(reference=created.reference, idempotency_key="d1")

    assert (deleted.reference, deleted.deleted) == (created.reference, True)
    assert gateway.retrieve_customer(reference=created.reference).deleted
    with pytest.raises(Permanent):
        gateway.retrieve_customer(reference="cus_unknown")


def test_attach_clones_the_test_token_with_its_card_details_and_a_stable_fingerprint(gateway):
    customer = _customer(gateway)

    first = _attach(gateway, customer.reference, "pm_card_visa", "a1")
    second = _attach(gateway, customer.reference, "pm_card_visa", "a2")
    amex = _attach(gateway, customer.reference, "pm_card_amex", "a3")
    debit = _attach(gateway, customer.reference, "pm_card_visa_debit", "a4")

    assert first.reference.startswith("pm_")
    assert first.reference not in ("pm_card_visa", second.reference)
    assert first.customer_reference == customer.reference
    assert first.card
    assert second.card
    assert amex.card
    assert debit.card
    assert (first.card.brand, first.card.last4, first.card.country, first.card.exp_month) == ("visa", "4242", "US", 12)
    assert (amex.card.brand, amex.card.last4) == ("amex", "8431")
    assert (debit.card.last4, debit.card.funding) == ("5556", "debit")
    assert first.card.fingerprint == second.card.fingerprint != debit.card.fingerprint
    assert gateway.retrieve_payment_method(payment_method=first.reference) == first
    assert _attach(gateway, customer.reference, "pm_card_visa", "a1") == first  # the same key: one attach
    listed = {method.reference for method in gateway.list_payment_methods(customer_reference=customer.reference)}
    assert listed == {first.reference, second.reference, amex.reference, debit.reference}


def test_attaching_a_decline_card_is_declined(gateway):
    customer = _customer(gateway)

    with pytest.raises(Declined) as declined:
        _attach(gateway, customer.reference, "pm_card_chargeDeclinedInsufficientFunds")

    assert declined.value.code == "insufficient_funds"
    assert list(gateway.list_payment_methods(customer_reference=customer.reference)) == []
    with pytest.raises(Permanent):
        _attach(gateway, customer.reference, "pm_nope", "a2")


def test_default_detach_and_a_detached_or_foreign_method_is_refused(gateway):
    customer, other = _customer(gateway), _customer(gateway, "cust_2")
    saved = _attach(gateway, customer.reference)
    assert _update(
        gateway, customer.reference, "u1", default_payment_method=saved.reference
    ).default_payment_method == (saved.reference)
    with pytest.raises(Permanent, match="does not belong"):
        _charge(gateway, "pay_1", saved.reference, customer=other.reference)

    detached = gateway.detach_payment_method(payment_method=saved.reference, idempotency_key="det_1")

    assert detached.customer_reference == ""
    assert gateway.retrieve_customer(reference=customer.reference).default_payment_method == ""
    assert list(gateway.list_payment_methods(customer_reference=customer.reference)) == []
    with pytest.raises(Permanent, match="detached"):
        _charge(gateway, "pay_2", saved.reference, customer=customer.reference)
    assert _update(gateway, customer.reference, "u2", default_payment_method="").default_payment_method == ""


def test_deleting_a_customer_detaches_its_methods(gateway):
    customer = _customer(gateway)
    saved = _attach(gateway, customer.reference)

    gateway.delete_customer(reference=customer.reference, idempotency_key="del_1")

    assert gateway.retrieve_payment_method(payment_method=saved.reference).customer_reference == ""


def test_a_saved_card_is_charged_on_and_off_session(gateway):
    customer = _customer(gateway)
    saved = _attach(gateway, customer.reference)

    on_session = _charge(gateway, "pay_1", saved.reference, customer=customer.reference)
    off_session = _charge(gateway, "pay_2", saved.reference, customer=customer.reference, off_session=True)

    assert (on_session.status, on_session.payment_method) == ("succeeded", saved.reference)
    assert (off_session.status, off_session.amount_received) == ("succeeded", 1500)


def test_off_session_authentication_required_and_charge_customer_fail_are_declined(gateway):
    customer = _customer(gateway)
    needs_3ds = _attach(gateway, customer.reference, "pm_card_authenticationRequired", "a1")
    fails = _attach(gateway, customer.reference, "pm_card_chargeCustomerFail", "a2")

    with pytest.raises(Declined) as authentication:
        _charge(gateway, "pay_1", needs_3ds.reference, customer=customer.reference, off_session=True)
    with pytest.raises(Declined) as declined:
        _charge(gateway, "pay_2", fails.reference, customer=customer.reference, off_session=True)

    assert authentication.value.code == "authentication_required"
    assert authentication.value.intent is not None
    assert authentication.value.intent.status == "requires_payment_method"
    assert declined.value.code == "card_declined"
    on_session = _charge(gateway, "pay_3", needs_3ds.reference, customer=customer.reference)
    assert on_session.status == "requires_action"


def test_setup_future_usage_saves_the_card_to_the_customer(gateway):
    customer = _customer(gateway)

    paid = _charge(
        gateway, "pay_1", "pm_card_mastercard", customer=customer.reference, setup_future_usage="off_session"
    )

    listed = list(gateway.list_payment_methods(customer_reference=customer.reference))
    assert paid.status == "succeeded"
    assert [method.reference for method in listed] == [paid.payment_method]
    assert listed[0].card is not None
    assert listed[0].card.last4 == "4444"


def test_setup_intent_waits_for_stripe_js_then_saves_the_card(gateway, localstripe: LocalStripe):
    customer = _customer(gateway)

    setup = gateway.create_setup_intent(customer_reference=customer.reference, metadata={}, idempotency_key="s1")
    assert (setup.status, setup.customer_reference) == ("requires_payment_method", customer.reference)
    assert setup.client_secret.startswith(setup.reference)
    localstripe.client.v1.setup_intents.confirm(  # what Stripe.js does on the customer's side
        setup.reference, {"payment_method": "pm_card_visa", "client_secret": setup.client_secret}
    )

    confirmed = gateway.retrieve_setup_intent(reference=setup.reference)
    assert confirmed.status == "succeeded"
    assert confirmed.payment_method.startswith("pm_")
    saved = gateway.retrieve_payment_method(payment_method=confirmed.payment_method)
    assert saved.customer_reference == customer.reference


def test_setup_intent_confirmed_at_once(gateway):
    customer = _customer(gateway)

    def setup(key: str, token: str):
        return gateway.create_setup_intent(
            customer_reference=customer.reference, metadata={}, idempotency_key=key, payment_method=token, confirm=True
        )

    assert setup("s1", "pm_card_visa").status == "succeeded"
    assert setup("s2", "pm_card_authenticationRequired").status == "requires_action"
    with pytest.raises(Declined) as declined:
        setup("s3", "pm_card_chargeDeclined")
    assert declined.value.code == "card_declined"
    assert len(list(gateway.list_payment_methods(customer_reference=customer.reference))) == 1


def test_twenty_concurrent_attaches_with_one_key_save_one_method(gateway):
    customer = _customer(gateway)

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda _: _attach(gateway, customer.reference, key="once"), range(20)))

    assert all(isinstance(result, PaymentMethodResult) for result in results)
    assert len({result.reference for result in results}) == 1
    assert [m.reference for m in gateway.list_payment_methods(customer_reference=customer.reference)] == [
        results[0].reference
    ]
