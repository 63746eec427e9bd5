"""The simulator's customers, setup intents and saved payment methods, on the real Redis and its in-process store."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from django.conf import settings

from gateways.base import (
    CustomerResult,
    Declined,
    GatewayTimeout,
    GatewayUnavailable,
    IntentResult,
    PaymentMethodResult,
    Permanent,
)
from gateways.registry import TIMED_OPERATIONS, get_gateway
from gateways.simulator import SimulatorGateway
from gateways.simulator import store as store_module
from tests.gateways.redis_monitor import monitored


@pytest.fixture(params=["redis", "memory"])
def sim(request, settings) -> SimulatorGateway:
    """The simulator on the test Redis (the cache's), and again on its in-process store."""
    if request.param == "memory":
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
        request.getfixturevalue("monkeypatch").setattr(store_module, "_stores", {})
    return SimulatorGateway()


def _customer(sim: SimulatorGateway, key: str = "cust_1", **overrides: Any) -> CustomerResult:
    params = {"email": "ada@example.com", "name": "Ada", "metadata": {"customer_id": key}, "idempotency_key": key}
    return sim.create_customer(**(params | overrides))


def _attach(sim: SimulatorGateway, customer: str, card: str = "pm_card_visa", key: str = "att_1"):
    return sim.attach_payment_method(payment_method=card, customer_reference=customer, idempotency_key=key)


def _charge(sim: SimulatorGateway, key: str, payment_method: str, **overrides: Any) -> IntentResult:
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
    return sim.create_intent(**(params | overrides))


def _update(sim: SimulatorGateway, reference: str, key: str, **fields: Any) -> CustomerResult:
    params = {"email": "ada@example.com", "name": "Ada", "metadata": {}, "default_payment_method": None}
    return sim.update_customer(reference=reference, idempotency_key=key, **(params | fields))


def _together(calls: list[Callable[[], Any]]) -> list[Any]:
    def run(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - the test inspects what each call gave
            return exc

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


# --- customers -------------------------------------------------------------------------------------------------
def test_customer_create_update_retrieve_delete(sim):
    created = _customer(sim)

    assert created.reference.startswith("cus_sim_")
    assert (created.email, created.name, created.metadata) == ("ada@example.com", "Ada", {"customer_id": "cust_1"})
    assert created.created_at is not None
    assert not created.deleted
    assert sim.retrieve_customer(reference=created.reference) == created

    updated = _update(sim, created.reference, "u1", email="grace@example.com", name="", metadata={"tier": "gold"})
    assert (updated.email, updated.name) == ("grace@example.com", "")
    assert updated.metadata == {"customer_id": "cust_1", "tier": "gold"}  # merged, as on Stripe
    assert _update(sim, created.reference, "u2", metadata={"tier": ""}).metadata == {"customer_id": "cust_1"}

    deleted = sim.delete_customer(reference=created.reference, idempotency_key="d1")
    assert deleted == CustomerResult(reference=created.reference, deleted=True)
    assert sim.retrieve_customer(reference=created.reference).deleted
    with pytest.raises(Permanent, match="No such customer"):
        _update(sim, created.reference, "u3")
    with pytest.raises(Permanent, match="No such customer") as unknown:
        sim.retrieve_customer(reference="cus_sim_unknown")
    assert unknown.value.code == "resource_missing"


def test_the_same_key_creates_one_customer(sim):
    first = _customer(sim, "cust_1")
    again = _customer(sim, "cust_1")

    assert again == first
    assert (sim.call_count("create_customer"), sim.performed_count("create_customer")) == (2, 1)
    assert _customer(sim, "cust_2").reference != first.reference


def test_default_payment_method_is_set_unset_and_must_be_the_customers(sim):
    customer = _customer(sim)
    other = _customer(sim, "cust_2")
    method = _attach(sim, customer.reference)
    others = _attach(sim, other.reference, key="att_2")

    assert _update(sim, customer.reference, "u1", default_payment_method=method.reference).default_payment_method == (
        method.reference
    )
    assert _update(sim, customer.reference, "u2").default_payment_method == method.reference  # None leaves it
    with pytest.raises(Permanent, match="does not have a payment method"):
        _update(sim, customer.reference, "u3", default_payment_method=others.reference)
    assert _update(sim, customer.reference, "u4", default_payment_method="").default_payment_method == ""


# --- attach, detach, list --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("token", "brand", "last4", "funding"),
    [
        ("pm_card_visa", "visa", "4242", "credit"),
        ("pm_card_mastercard", "mastercard", "4444", "credit"),
        ("pm_card_amex", "amex", "8431", "credit"),
        ("pm_card_visa_debit", "visa", "5556", "debit"),
        ("pm_card_discover", "discover", "1117", "credit"),
        ("pm_card_chargeCustomerFail", "visa", "0341", "credit"),
        ("pm_card_authenticationRequired", "visa", "3184", "credit"),
    ],
)
def test_attaching_a_test_token_clones_it_with_the_test_cards_details(sim, token, brand, last4, funding):
    customer = _customer(sim)

    saved = _attach(sim, customer.reference, token)

    assert saved.reference.startswith("pm_sim_")
    assert saved.reference != token
    assert (saved.type, saved.customer_reference) == ("card", customer.reference)
    card = saved.card
    assert card is not None
    assert (card.brand, card.last4, card.funding, card.country) == (brand, last4, funding, "US")
    assert 1 <= card.exp_month <= 12
    assert (card.exp_year, card.exp_month) > (datetime.now(tz=UTC).year, 0)
    assert card.fingerprint == sim.card_fingerprint(payment_method=token)
    assert sim.card_fingerprint(payment_method=saved.reference) == card.fingerprint
    assert sim.retrieve_payment_method(payment_method=saved.reference) == saved


def test_the_same_card_has_the_same_fingerprint_and_another_card_another(sim):
    customer = _customer(sim)

    first = _attach(sim, customer.reference, "pm_card_visa", "a1")
    second = _attach(sim, customer.reference, "pm_card_visa", "a2")
    debit = _attach(sim, customer.reference, "pm_card_visa_debit", "a3")

    assert first.reference != second.reference
    assert first.card
    assert second.card
    assert debit.card
    assert first.card.fingerprint == second.card.fingerprint != debit.card.fingerprint


@pytest.mark.parametrize(
    ("token", "code"),
    [("pm_card_chargeDeclined", "card_declined"), ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds")],
)
def test_attaching_a_decline_token_is_declined_and_saves_nothing(sim, token, code):
    customer = _customer(sim)

    with pytest.raises(Declined) as declined:
        _attach(sim, customer.reference, token)

    assert declined.value.code == code
    assert list(sim.list_payment_methods(customer_reference=customer.reference)) == []
    with pytest.raises(Declined):  # the key replays the decline
        _attach(sim, customer.reference, token)
    assert sim.performed_count("attach_payment_method") == 1


def test_attaching_an_unknown_token_or_to_an_unknown_customer_is_permanent(sim):
    customer = _customer(sim)

    with pytest.raises(Permanent, match="No such PaymentMethod"):
        _attach(sim, customer.reference, "pm_card_unknown")
    with pytest.raises(Permanent, match="No such customer"):
        _attach(sim, "cus_sim_nobody", key="att_2")


def test_list_detach_and_a_detached_method_is_never_usable_again(sim):
    customer = _customer(sim)
    visa = _attach(sim, customer.reference, "pm_card_visa", "a1")
    mastercard = _attach(sim, customer.reference, "pm_card_mastercard", "a2")
    _update(sim, customer.reference, "u1", default_payment_method=visa.reference)

    listed = list(sim.list_payment_methods(customer_reference=customer.reference))
    assert [method.reference for method in listed] == [mastercard.reference, visa.reference]  # newest first

    detached = sim.detach_payment_method(payment_method=visa.reference, idempotency_key="det_1")

    assert (detached.reference, detached.customer_reference) == (visa.reference, "")
    assert sim.detach_payment_method(payment_method=visa.reference, idempotency_key="det_1") == detached  # replay
    assert sim.retrieve_payment_method(payment_method=visa.reference).customer_reference == ""
    assert [m.reference for m in sim.list_payment_methods(customer_reference=customer.reference)] == [
        mastercard.reference
    ]
    assert sim.retrieve_customer(reference=customer.reference).default_payment_method == ""
    with pytest.raises(Permanent, match="not attached"):
        sim.detach_payment_method(payment_method=visa.reference, idempotency_key="det_2")
    with pytest.raises(Permanent, match="detached"):
        _charge(sim, "pay_1", visa.reference, customer=customer.reference)
    with pytest.raises(Permanent, match="detached"):
        _attach(sim, customer.reference, visa.reference, "a3")


def test_deleting_a_customer_detaches_its_methods(sim):
    customer = _customer(sim)
    saved = _attach(sim, customer.reference)

    sim.delete_customer(reference=customer.reference, idempotency_key="del_1")

    assert sim.retrieve_payment_method(payment_method=saved.reference).customer_reference == ""
    assert list(sim.list_payment_methods(customer_reference=customer.reference)) == []
    with pytest.raises(Permanent):
        _charge(sim, "pay_1", saved.reference, customer=customer.reference)


def test_twenty_concurrent_attaches_with_one_key_save_one_method(sim):
    customer = _customer(sim)

    results = _together([lambda: _attach(sim, customer.reference, key="att_once") for _ in range(20)])

    answered = [result for result in results if isinstance(result, PaymentMethodResult)]
    assert all(isinstance(result, GatewayUnavailable) for result in results if result not in answered)  # 409s
    assert answered
    assert {result.reference for result in answered} == {answered[0].reference}
    assert [m.reference for m in sim.list_payment_methods(customer_reference=customer.reference)] == [
        answered[0].reference
    ]
    assert sim.performed_count("attach_payment_method") == 1
    assert _attach(sim, customer.reference, key="att_once") == answered[0]


# --- charging saved methods ------------------------------------------------------------------------------------
def test_a_saved_method_is_charged_on_and_off_session(sim):
    customer = _customer(sim)
    saved = _attach(sim, customer.reference)

    on_session = _charge(sim, "pay_1", saved.reference, customer=customer.reference)
    off_session = _charge(sim, "pay_2", saved.reference, customer=customer.reference, off_session=True)

    assert (on_session.status, on_session.payment_method, on_session.amount_received) == (
        "succeeded",
        saved.reference,
        1500,
    )
    assert (off_session.status, off_session.payment_method) == ("succeeded", saved.reference)


def test_a_saved_method_of_another_customer_or_without_its_customer_is_refused(sim):
    owner, other = _customer(sim, "cust_1"), _customer(sim, "cust_2")
    saved = _attach(sim, owner.reference)

    with pytest.raises(Permanent, match="does not belong"):
        _charge(sim, "pay_1", saved.reference, customer=other.reference)
    with pytest.raises(Permanent, match="does not belong"):
        _charge(sim, "pay_2", saved.reference)
    assert sim.performed_count("create_intent") == 0


def test_off_session_a_card_needing_authentication_is_declined_authentication_required(sim):
    customer = _customer(sim)
    saved = _attach(sim, customer.reference, "pm_card_authenticationRequired")

    with pytest.raises(Declined) as declined:
        _charge(sim, "pay_1", saved.reference, customer=customer.reference, off_session=True)
    on_session = _charge(sim, "pay_2", saved.reference, customer=customer.reference)

    assert declined.value.code == "authentication_required"
    assert declined.value.intent is not None
    assert declined.value.intent.status == "requires_payment_method"
    assert on_session.status == "requires_action"  # on session: the customer does 3-D Secure
    assert sim.complete_action(reference=on_session.reference).status == "succeeded"


def test_charge_customer_fail_attaches_and_every_charge_is_declined(sim):
    customer = _customer(sim)
    saved = _attach(sim, customer.reference, "pm_card_chargeCustomerFail")

    for key, off_session in (("pay_1", False), ("pay_2", True)):
        with pytest.raises(Declined) as declined:
            _charge(sim, key, saved.reference, customer=customer.reference, off_session=off_session)
        assert declined.value.code == "card_declined"


def test_off_session_needs_confirm(sim):
    customer = _customer(sim)

    with pytest.raises(Permanent, match="off_session"):
        _charge(sim, "pay_1", "pm_card_visa", customer=customer.reference, off_session=True, confirm=False)


def test_setup_future_usage_saves_the_card_when_the_payment_succeeds(sim):
    customer = _customer(sim)

    paid = _charge(sim, "pay_1", "pm_card_visa", customer=customer.reference, setup_future_usage="off_session")
    with pytest.raises(Declined):
        _charge(sim, "pay_2", "pm_card_chargeDeclined", customer=customer.reference, setup_future_usage="off_session")

    listed = list(sim.list_payment_methods(customer_reference=customer.reference))
    assert [method.reference for method in listed] == [paid.payment_method]
    assert paid.payment_method.startswith("pm_sim_")
    assert paid.status == "succeeded"
    later = _charge(sim, "pay_3", paid.payment_method, customer=customer.reference, off_session=True)
    assert later.status == "succeeded"


def test_setup_future_usage_after_three_d_secure_saves_the_card_once_authenticated(sim):
    customer = _customer(sim)
    pending = _charge(
        sim, "pay_1", "pm_card_threeDSecure2Required", customer=customer.reference, setup_future_usage="off_session"
    )
    assert list(sim.list_payment_methods(customer_reference=customer.reference)) == []

    completed = sim.complete_action(reference=pending.reference)

    assert completed.status == "succeeded"
    assert [m.reference for m in sim.list_payment_methods(customer_reference=customer.reference)] == [
        completed.payment_method
    ]


# --- setup intents ---------------------------------------------------------------------------------------------
def test_setup_intent_waits_for_the_card_then_saves_it(sim):
    customer = _customer(sim)

    setup = sim.create_setup_intent(customer_reference=customer.reference, metadata={}, idempotency_key="seti_1")
    assert setup.reference.startswith("seti_sim_")
    assert (setup.status, setup.customer_reference, setup.payment_method) == (
        "requires_payment_method",
        customer.reference,
        "",
    )
    assert setup.client_secret.startswith(f"{setup.reference}_secret_")

    confirmed = sim.confirm_setup_intent(reference=setup.reference, payment_method="pm_card_mastercard")

    assert confirmed.status == "succeeded"
    assert confirmed.payment_method.startswith("pm_sim_")
    assert sim.retrieve_setup_intent(reference=setup.reference) == confirmed
    saved = sim.retrieve_payment_method(payment_method=confirmed.payment_method)
    assert saved.customer_reference == customer.reference
    assert saved.card
    assert saved.card.last4 == "4444"
    with pytest.raises(Permanent, match="cannot be confirmed"):
        sim.confirm_setup_intent(reference=setup.reference, payment_method="pm_card_visa")


def test_setup_intent_with_a_card_needing_authentication_requires_action(sim):
    customer = _customer(sim)

    setup = sim.create_setup_intent(
        customer_reference=customer.reference,
        metadata={},
        idempotency_key="seti_1",
        payment_method="pm_card_authenticationRequired",
        confirm=True,
    )
    assert setup.status == "requires_action"
    assert list(sim.list_payment_methods(customer_reference=customer.reference)) == []

    done = sim.complete_action(reference=setup.reference)

    assert done.status == "succeeded"
    assert done.payment_method == setup.payment_method
    assert [m.reference for m in sim.list_payment_methods(customer_reference=customer.reference)] == [
        done.payment_method
    ]


def test_setup_intent_with_a_decline_token_is_declined_and_waits_for_another_card(sim):
    customer = _customer(sim)
    setup = sim.create_setup_intent(customer_reference=customer.reference, metadata={}, idempotency_key="seti_1")

    with pytest.raises(Declined) as declined:
        sim.confirm_setup_intent(reference=setup.reference, payment_method="pm_card_chargeDeclinedExpiredCard")

    assert declined.value.code == "expired_card"
    assert sim.retrieve_setup_intent(reference=setup.reference).status == "requires_payment_method"
    assert sim.confirm_setup_intent(reference=setup.reference, payment_method="pm_card_visa").status == "succeeded"


# --- faults, latency, the registry -----------------------------------------------------------------------------
def test_faults_apply_to_the_new_calls(sim):
    customer = _customer(sim)
    sim.inject_fault("attach_payment_method", "timeout")  # the work is done, the answer is lost

    with pytest.raises(GatewayTimeout):
        _attach(sim, customer.reference)
    saved = _attach(sim, customer.reference)  # the same key replays what was done

    assert [m.reference for m in sim.list_payment_methods(customer_reference=customer.reference)] == [saved.reference]
    sim.inject_fault("retrieve_customer", "unavailable")
    with pytest.raises(GatewayUnavailable):
        sim.retrieve_customer(reference=customer.reference)
    sim.inject_fault("create_customer", "timeout_before")
    with pytest.raises(GatewayTimeout):
        _customer(sim, "cust_2")
    assert sim.performed_count("create_customer") == 1


def test_each_new_call_is_at_most_two_redis_round_trips(simulator):
    customer = _customer(simulator)
    saved = _attach(simulator, customer.reference)
    calls: dict[str, Callable[[], Any]] = {
        "create_customer": lambda: _customer(simulator, "cust_x"),
        "update_customer": lambda: _update(simulator, customer.reference, "u", default_payment_method=saved.reference),
        "retrieve_customer": lambda: simulator.retrieve_customer(reference=customer.reference),
        "attach": lambda: _attach(simulator, customer.reference, key="att_x"),
        "charge saved": lambda: _charge(simulator, "pay_x", saved.reference, customer=customer.reference),
        "setup intent": lambda: simulator.create_setup_intent(
            customer_reference=customer.reference,
            metadata={},
            idempotency_key="seti_x",
            payment_method="pm_card_visa",
            confirm=True,
        ),
        "retrieve method": lambda: simulator.retrieve_payment_method(payment_method=saved.reference),
        "list methods": lambda: list(simulator.list_payment_methods(customer_reference=customer.reference)),
        "detach": lambda: simulator.detach_payment_method(payment_method=saved.reference, idempotency_key="det_x"),
        "delete_customer": lambda: simulator.delete_customer(reference=customer.reference, idempotency_key="del_x"),
    }
    with monitored(settings.REDIS_URL) as monitor:
        sent = {name: monitor.count(call).names for name, call in calls.items()}

    assert all(1 <= len(names) <= 2 and set(names) == {"EVALSHA"} for names in sent.values()), sent


def test_the_registry_times_the_new_operations(settings):
    settings.PAYMENTS_GATEWAY = "simulator"
    gateway = get_gateway()

    created = gateway.create_customer(email="", name="", metadata={}, idempotency_key="k1")

    assert {"create_customer", "attach_payment_method", "create_setup_intent"} <= TIMED_OPERATIONS
    assert gateway.retrieve_customer(reference=created.reference) == created
