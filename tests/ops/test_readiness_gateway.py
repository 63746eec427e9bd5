"""`/health/ready` reports the gateway from the last call's outcome, without calling it; degraded stays a 200."""

import pytest
from django.core.cache import cache
from django.test import Client

from gateways import get_gateway, registry
from gateways.base import GatewayUnavailable
from gateways.simulator import SimulatorGateway

pytestmark = pytest.mark.django_db


def ready() -> tuple[int, dict]:
    response = Client().get("/health/ready")
    return response.status_code, response.json()


def test_before_any_gateway_call_the_gateway_is_ok():
    status, body = ready()

    assert status == 200
    assert body["gateway"] == "ok"
    assert body["checks"] == {"database": "ok", "cache": "ok", "broker": "ok"}


def test_a_call_that_got_no_answer_makes_it_degraded_and_the_next_answer_ok_again(create_payment):
    SimulatorGateway.inject_fault("create_intent", "unavailable")
    failed = create_payment()
    degraded_status, degraded = ready()

    succeeded = create_payment()
    ok_status, ok = ready()

    assert (failed.status_code, succeeded.status_code) == (502, 201)
    assert (degraded_status, degraded["status"], degraded["gateway"]) == (200, "ok", "degraded")
    assert (ok_status, ok["gateway"]) == (200, "ok")


def test_a_declined_card_is_the_gateway_answering(create_payment):
    declined = create_payment(payment_method="pm_card_chargeDeclined", confirm=True)

    assert declined.status_code == 402
    assert ready()[1]["gateway"] == "ok"


def test_a_worker_s_failed_call_is_seen_by_the_probe():
    """The record is in the shared cache: any process's last call counts (here a direct call, as a worker makes)."""
    SimulatorGateway.inject_fault("retrieve_intent", "unavailable")

    with pytest.raises(GatewayUnavailable):
        get_gateway().retrieve_intent(reference="pi_sim_any")

    assert ready()[1]["gateway"] == "degraded"


def test_probes_never_call_the_gateway(create_payment):
    create_payment()
    calls_before = {op: SimulatorGateway.call_count(op) for op in ("create_intent", "retrieve_intent")}

    for _ in range(5):
        assert ready()[0] == 200

    assert {op: SimulatorGateway.call_count(op) for op in calls_before} == calls_before


def test_answers_in_a_row_are_recorded_once_a_second_and_no_answer_at_once(create_payment, settings):
    """One Redis write per gateway call cost as much as the simulator's call: answers like the last are not
    written again within the window; a call that got no answer is, and so is the next answer after it."""
    settings.GATEWAY_HEALTH_REFRESH_MS = 3_600_000
    SimulatorGateway.inject_fault("create_intent", "unavailable")
    assert create_payment().status_code == 502
    first_failure = ready()[1]["gateway"]
    assert create_payment().status_code == 201
    answer_after_it = cache.get(registry.GATEWAY_HEALTH_CACHE_KEY)

    cache.delete(registry.GATEWAY_HEALTH_CACHE_KEY)
    assert create_payment().status_code == 201
    written_again = cache.get(registry.GATEWAY_HEALTH_CACHE_KEY)

    SimulatorGateway.inject_fault("create_intent", "unavailable")
    assert create_payment().status_code == 502
    after_failure = ready()[1]["gateway"]

    assert first_failure == "degraded"  # no answer: written at once
    assert answer_after_it["outcome"] == "ok"  # the next answer after it: written at once
    assert written_again is None  # the second answer within the window: no write
    assert after_failure == "degraded"  # no answer, within the window too
