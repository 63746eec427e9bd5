"""The simulator gateway on the real Redis (and on its in-process store): behaviour, idempotency, races, cost."""

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings

from gateways.base import Declined, GatewayError, GatewayTimeout, GatewayUnavailable, IntentResult, Permanent
from gateways.simulator import SimulatorGateway
from gateways.simulator import gateway as simulator_module
from gateways.simulator import store as store_module
from tests.gateways.redis_monitor import RedisMonitor, monitored


@pytest.fixture(params=["redis", "memory"])
def sim(request, settings) -> SimulatorGateway:
    """The simulator on the test Redis (the cache's), and again on its in-process store (a cache that is not Redis)."""
    if request.param == "memory":
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
        request.getfixturevalue("monkeypatch").setattr(store_module, "_stores", {})  # a fresh process's state
    return SimulatorGateway()


def _create(sim: SimulatorGateway, key: str, payment_method: str = "", **overrides: Any) -> IntentResult:
    params = {
        "amount": 2000,
        "currency": "usd",
        "capture_method": "automatic",
        "payment_method": payment_method,
        "metadata": {"payment_id": key},
        "description": "",
        "idempotency_key": f"{key}:create",
    }
    return sim.create_intent(**(params | overrides))


def _window(**shift: float) -> dict[str, datetime]:
    now = datetime.now(tz=UTC)
    return {"created_gte": now - timedelta(minutes=5, **shift), "created_lt": now + timedelta(minutes=5)}


def _listed(sim: SimulatorGateway) -> list[str]:
    return [intent.reference for intent in sim.list_intents(**_window())]


# --- create and confirm in one call ------------------------------------------------------------------------
def test_create_with_confirm_charges_a_succeeding_card(sim):
    intent = _create(sim, "pay_1", "pm_card_visa", confirm=True)

    assert intent.reference.startswith("pi_sim_")
    assert (intent.status, intent.amount_received, intent.amount_capturable) == ("succeeded", 2000, 0)
    assert sim.retrieve_intent(reference=intent.reference) == intent
    assert (sim.performed_count("create_intent"), sim.call_count("confirm_intent")) == (1, 0)
    assert _listed(sim) == [intent.reference]


def test_create_with_confirm_authorizes_a_manual_capture_card(sim):
    authorized = _create(sim, "pay_1", "pm_card_visa", confirm=True, capture_method="manual")

    assert (authorized.status, authorized.amount_capturable) == ("requires_capture", 2000)
    assert authorized.amount_received == 0
    captured = sim.capture_intent(reference=authorized.reference, amount=1500, idempotency_key="pay_1:capture")
    assert (captured.status, captured.amount_received, captured.amount_capturable) == ("succeeded", 1500, 0)


def test_declined_create_with_confirm_raises_declined_with_the_created_intent(sim):
    # when
    with pytest.raises(Declined) as raised:
        _create(sim, "pay_1", "pm_card_chargeDeclinedInsufficientFunds", confirm=True)

    # then
    assert (raised.value.code, raised.value.message) == ("insufficient_funds", "Your card has insufficient funds.")
    declined = raised.value.intent
    assert declined is not None
    assert (declined.status, declined.amount_received) == ("requires_payment_method", 0)
    assert sim.retrieve_intent(reference=declined.reference) == declined
    assert _listed(sim) == [declined.reference]

    # and the same key gives the same decline with the same intent; another card can still pay it
    with pytest.raises(Declined) as again:
        _create(sim, "pay_1", "pm_card_chargeDeclinedInsufficientFunds", confirm=True)
    assert again.value.intent == declined
    assert sim.performed_count("create_intent") == 1
    paid = sim.confirm_intent(reference=declined.reference, payment_method="pm_card_visa", idempotency_key="c2")
    assert (paid.status, paid.amount_received) == ("succeeded", 2000)


def test_create_with_confirm_and_three_d_secure_waits_for_the_customer(sim):
    pending = _create(sim, "pay_1", "pm_card_threeDSecure2Required", confirm=True)

    completed = sim.complete_action(reference=pending.reference)

    assert (pending.status, pending.amount_received) == ("requires_action", 0)
    assert (completed.status, completed.amount_received) == ("succeeded", 2000)
    assert sim.retrieve_intent(reference=pending.reference) == completed


@pytest.mark.parametrize(
    ("payment_method", "message"),
    [("", "You must provide a payment method"), ("pm_card_unknown", "No such PaymentMethod: 'pm_card_unknown'")],
)
def test_create_with_confirm_without_a_usable_payment_method_is_permanent_and_creates_nothing(
    sim, payment_method, message
):
    with pytest.raises(Permanent, match=message):
        _create(sim, "pay_1", payment_method, confirm=True)

    assert _listed(sim) == []
    assert (sim.call_count("create_intent"), sim.performed_count("create_intent")) == (1, 0)


def test_create_with_confirm_whose_answer_is_lost_is_done_once_and_replayed(sim):
    # given: the answer to the first call is lost after the work was done
    sim.inject_fault("create_intent", "timeout")
    with pytest.raises(GatewayTimeout):
        _create(sim, "pay_1", "pm_card_visa", confirm=True)

    # when: the caller repeats with the same key
    replayed = _create(sim, "pay_1", "pm_card_visa", confirm=True)

    # then
    assert (replayed.status, replayed.amount_received) == ("succeeded", 2000)
    assert _listed(sim) == [replayed.reference]
    assert (sim.call_count("create_intent"), sim.performed_count("create_intent")) == (2, 1)
    assert sim.calls_for_key("pay_1:create") == 2


def test_a_fault_before_the_work_creates_nothing(sim):
    sim.inject_fault("create_intent", "timeout_before")
    sim.inject_fault("create_intent", "unavailable")

    for _ in range(2):
        with pytest.raises(GatewayError):
            _create(sim, "pay_1", "pm_card_visa", confirm=True)

    assert _listed(sim) == []
    assert sim.performed_count("create_intent") == 0
    assert _create(sim, "pay_1", "pm_card_visa", confirm=True).status == "succeeded"


# --- the two-call path and the rest, on both stores ---------------------------------------------------------
def test_create_then_confirm_then_refund_until_nothing_is_left(sim):
    intent = _create(sim, "pay_1", "pm_card_visa")
    confirmed = sim.confirm_intent(reference=intent.reference, payment_method="", idempotency_key="pay_1:confirm")

    refund = {"intent_reference": intent.reference, "reason": "", "metadata": {}}
    first = sim.create_refund(**refund, amount=1500, idempotency_key="re_1")
    with pytest.raises(Permanent, match="greater than the unrefunded amount"):
        sim.create_refund(**refund, amount=600, idempotency_key="re_2")
    last = sim.create_refund(**refund, amount=500, idempotency_key="re_3")

    assert (intent.status, confirmed.status) == ("requires_confirmation", "succeeded")
    assert sim.retrieve_refund(reference=first.reference) == first
    assert [refund.reference for refund in sim.list_refunds(**_window())] == [first.reference, last.reference]
    assert sim.performed_count("create_refund") == 2


def test_cancel_and_the_states_that_refuse(sim):
    authorized = _create(sim, "pay_1", "pm_card_visa", confirm=True, capture_method="manual")

    canceled = sim.cancel_intent(reference=authorized.reference, reason="", idempotency_key="pay_1:cancel")

    assert (canceled.status, canceled.amount_capturable) == ("canceled", 0)
    with pytest.raises(Permanent):
        sim.capture_intent(reference=authorized.reference, amount=None, idempotency_key="pay_1:capture")
    with pytest.raises(Permanent):
        sim.retrieve_intent(reference="pi_sim_unknown")


def test_list_intents_pages_through_the_window_oldest_first(sim, monkeypatch):
    monkeypatch.setattr(simulator_module, "_PAGE_SIZE", 3)
    made = [_create(sim, f"pay_{n}").reference for n in range(10)]

    assert _listed(sim) == made
    later = datetime.now(tz=UTC) + timedelta(minutes=1)
    assert list(sim.list_intents(created_gte=later, created_lt=later + timedelta(minutes=1))) == []


# --- concurrency --------------------------------------------------------------------------------------------
def _together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls at once from as many threads (released together); their results, or the errors raised."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait(timeout=30)
        try:
            return call()
        except GatewayError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_concurrent_creates_with_distinct_keys_are_all_listed(sim):
    results = _together([lambda n=n: _create(sim, f"pay_{n}", "pm_card_visa", confirm=True) for n in range(40)])

    assert all(isinstance(result, IntentResult) for result in results)
    assert sorted(_listed(sim)) == sorted(result.reference for result in results)
    assert len(set(_listed(sim))) == 40
    assert sim.performed_count("create_intent") == 40


def _answered(results: list[Any]) -> list[IntentResult]:
    """The results that are intents; every other one must be Stripe's 409 for a call with the key in progress."""
    answered = [result for result in results if isinstance(result, IntentResult)]
    assert all(isinstance(result, GatewayUnavailable) for result in results if not isinstance(result, IntentResult))
    return answered


def test_concurrent_creates_with_the_same_key_create_one_intent(sim):
    results = _together([lambda: _create(sim, "pay_1", "pm_card_visa", confirm=True) for _ in range(12)])

    answered = _answered(results)
    assert len({result.reference for result in answered}) == 1
    assert _listed(sim) == [answered[0].reference]
    assert (sim.call_count("create_intent"), sim.performed_count("create_intent")) == (12, 1)
    assert _create(sim, "pay_1", "pm_card_visa", confirm=True) == answered[0]


def test_concurrent_confirms_with_the_same_key_charge_once(sim):
    intent = _create(sim, "pay_1", "pm_card_visa")

    confirm = {"reference": intent.reference, "payment_method": "", "idempotency_key": "k"}
    results = _together([lambda: sim.confirm_intent(**confirm) for _ in range(8)])

    answered = _answered(results)
    assert {result.status for result in answered} == {"succeeded"}
    assert all(result == answered[0] for result in answered)
    assert sim.performed_count("confirm_intent") == 1
    assert sim.confirm_intent(**confirm) == answered[0]


def test_a_call_while_one_with_the_same_key_is_in_progress_is_refused_like_stripes_409(sim, settings):
    # given: a slow gateway, and a first call in progress
    settings.SIMULATOR_LATENCY_MS = 500
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(_create, sim, "pay_1", "pm_card_visa", confirm=True)
        deadline = time.monotonic() + 5
        while sim.calls_for_key("pay_1:create") == 0:
            assert time.monotonic() < deadline, "the first call never reached the simulator"

        # when: the same key again, before the first answered
        with pytest.raises(GatewayUnavailable, match="in progress"):
            _create(sim, "pay_1", "pm_card_visa", confirm=True)

        # then: the first goes through, and the key replays it afterwards
        made = first.result(timeout=10)
    assert made.status == "succeeded"
    assert _create(sim, "pay_1", "pm_card_visa", confirm=True) == made
    assert sim.performed_count("create_intent") == 1


def test_a_one_step_call_while_one_with_the_same_key_is_in_progress_is_refused_like_stripes_409(sim, settings):
    # given: a first call in progress on a slow gateway (two steps: the key is marked meanwhile)
    settings.SIMULATOR_LATENCY_MS = 500
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(_create, sim, "pay_1", "pm_card_visa", confirm=True)
        deadline = time.monotonic() + 5
        while sim.calls_for_key("pay_1:create") == 0:
            assert time.monotonic() < deadline, "the first call never reached the simulator"

        # when: the same key again with no latency, a call of one step
        settings.SIMULATOR_LATENCY_MS = 0
        with pytest.raises(GatewayUnavailable, match="in progress"):
            _create(sim, "pay_1", "pm_card_visa", confirm=True)
        made = first.result(timeout=10)

    # then: the one step wrote nothing; the first call's intent is the only one, and the key replays it
    assert _listed(sim) == [made.reference]
    assert _create(sim, "pay_1", "pm_card_visa", confirm=True) == made
    assert (sim.call_count("create_intent"), sim.performed_count("create_intent")) == (3, 1)


def test_a_one_step_call_the_simulator_refuses_is_counted_and_writes_nothing(sim):
    with pytest.raises(Permanent, match="No such PaymentMethod"):
        _create(sim, "pay_1", "pm_card_unknown", confirm=True)

    assert (sim.call_count("create_intent"), sim.performed_count("create_intent")) == (1, 0)
    assert _listed(sim) == []


def test_latency_models_a_real_gateways_answer_time(sim, settings):
    settings.SIMULATOR_LATENCY_MS = 300
    intent = _create(sim, "pay_1", "pm_card_visa")

    started = time.monotonic()
    sim.confirm_intent(reference=intent.reference, payment_method="", idempotency_key="pay_1:confirm")

    assert time.monotonic() - started >= 0.3


def test_concurrent_refunds_with_distinct_keys_never_refund_more_than_was_paid(sim):
    paid = _create(sim, "pay_1", "pm_card_visa", confirm=True)

    results = _together(
        [
            lambda n=n: sim.create_refund(
                intent_reference=paid.reference, amount=500, reason="", metadata={}, idempotency_key=f"re_{n}"
            )
            for n in range(8)
        ]
    )

    refunded = [result for result in results if not isinstance(result, GatewayError)]
    assert len(refunded) == 4
    assert all(isinstance(result, Permanent) for result in results if result not in refunded)
    assert sum(refund.amount for refund in sim.list_refunds(**_window())) == 2000


def test_concurrent_confirm_and_cancel_of_one_intent_serialise(sim):
    intent = _create(sim, "pay_1", "pm_card_visa", capture_method="manual")

    results = _together(
        [
            lambda: sim.confirm_intent(reference=intent.reference, payment_method="", idempotency_key="confirm"),
            lambda: sim.cancel_intent(reference=intent.reference, reason="", idempotency_key="cancel"),
        ]
    )

    # then: the cancel wins either way, and nothing overwrote it: if the confirm came first the cancel released
    # the authorisation, if the cancel came first the confirm was refused
    confirmed, canceled = results
    final = sim.retrieve_intent(reference=intent.reference)
    assert canceled == final
    assert (final.status, final.amount_capturable) == ("canceled", 0)
    assert isinstance(confirmed, Permanent) or confirmed.status == "requires_capture"


# --- Redis commands per call --------------------------------------------------------------------------------
@pytest.fixture
def monitor() -> Iterator[RedisMonitor]:
    with monitored(settings.REDIS_URL) as redis_monitor:
        yield redis_monitor


def _calls(simulator: SimulatorGateway, key: str) -> dict[str, Callable[[], Any]]:
    """One of each gateway call, in an order where each can succeed."""
    made: dict[str, IntentResult] = {}

    def create() -> None:
        made["manual"] = _create(simulator, key, "pm_card_visa", capture_method="manual")

    def confirm() -> None:
        simulator.confirm_intent(reference=made["manual"].reference, payment_method="", idempotency_key=f"{key}:c")

    def capture() -> None:
        simulator.capture_intent(reference=made["manual"].reference, amount=None, idempotency_key=f"{key}:cap")

    def refund() -> None:
        ref = made["manual"].reference
        simulator.create_refund(intent_reference=ref, amount=100, reason="", metadata={}, idempotency_key=f"{key}:r")

    def create_and_confirm() -> None:
        made["auto"] = _create(simulator, f"{key}:auto", "pm_card_visa", confirm=True, capture_method="manual")

    def cancel() -> None:
        simulator.cancel_intent(reference=made["auto"].reference, reason="", idempotency_key=f"{key}:x")

    def retrieve() -> None:
        simulator.retrieve_intent(reference=made["manual"].reference)

    def declined() -> None:
        with pytest.raises(Declined):
            _create(simulator, f"{key}:declined", "pm_card_chargeDeclined", confirm=True)

    def replayed() -> None:
        _create(simulator, key, "pm_card_visa", capture_method="manual")

    return {
        "create": create,
        "confirm": confirm,
        "capture": capture,
        "refund": refund,
        "create+confirm": create_and_confirm,
        "cancel": cancel,
        "retrieve": retrieve,
        "create+confirm declined": declined,
        "create replayed": replayed,
    }


def test_each_gateway_call_sends_at_most_three_redis_commands_however_many_intents_exist(simulator, monitor):
    # given: a warm process (the step script loaded once)
    simulator.card_fingerprint(payment_method="pm_card_visa")

    # when: each call on an empty simulator, then again with 300 intents in it
    empty = {name: monitor.count(call) for name, call in _calls(simulator, "pay_a").items()}
    for n in range(300):
        _create(simulator, f"bulk_{n}", "pm_card_visa", confirm=True)
    full = {name: monitor.count(call) for name, call in _calls(simulator, "pay_b").items()}

    # then: at most three round trips per call (one Lua step each), and the same work whatever the size; a call
    # that reads nothing (a create with a test card) decides first and is one step, with no latency to model
    sent = {name: len(commands.sent) for name, commands in empty.items()}
    assert sent == {
        "create": 1,
        "confirm": 2,
        "capture": 2,
        "refund": 2,
        "create+confirm": 1,
        "cancel": 2,
        "retrieve": 1,
        "create+confirm declined": 1,
        "create replayed": 1,
    }
    assert all(set(commands.names) == {"EVALSHA"} for commands in empty.values())
    for name in empty:
        assert (full[name].names, len(full[name].scripted)) == (empty[name].names, len(empty[name].scripted)), name
        assert len(empty[name].scripted) <= 20, name  # a few O(1) commands inside the steps
    largest = max(len(command) for commands in full.values() for command in commands.sent + commands.scripted)
    assert largest < 2500  # nothing carries an index of all intents (the old list was 280 KB after a few thousand)


def test_listing_is_one_redis_command_per_page(simulator, monitor, monkeypatch):
    monkeypatch.setattr(simulator_module, "_PAGE_SIZE", 10)
    for n in range(25):
        _create(simulator, f"pay_{n}")

    counted = monitor.count(lambda: _listed(simulator))

    assert counted.names == ["EVALSHA"] * 3
