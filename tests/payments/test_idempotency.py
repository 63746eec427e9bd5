"""Idempotency keys as API.md says: one charge per key, replays, conflicts, what is stored."""

from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from events.models import Event
from gateways.simulator import SimulatorGateway
from payments.idempotency import idempotency_claim
from payments.models import IdempotencyKey, Payment
from tests.conftest import client_for
from tests.helpers import run_in_threads

BODY = {"amount": 2000, "currency": "usd", "customer_id": "cus_42", "payment_method": "pm_card_visa", "confirm": True}


def _post(client, body, key, path="/api/v1/payments/"):
    return client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_identical_creates_make_one_payment_and_one_charge(make_client, simulator):
    shop = make_client("shop-concurrent")
    clients = [client_for(shop.user) for _ in range(50)]

    responses = run_in_threads([lambda c=c: _post(c, BODY, "order-1001") for c in clients])

    statuses = sorted(r.status_code for r in responses)
    assert all(not isinstance(r, Exception) for r in responses)
    assert set(statuses) <= {201, 409}
    assert statuses.count(201) >= 1
    created = [r for r in responses if r.status_code == 201]
    assert len({r.json()["id"] for r in created}) == 1
    assert sum(1 for r in created if r.get("Idempotent-Replayed") != "true") == 1
    for conflict in (r for r in responses if r.status_code == 409):
        assert conflict.json()["error"]["code"] == "idempotency_key_in_use"
    assert Payment.objects.count() == 1
    assert simulator.performed_count("create_intent") == 1  # created and confirmed in one call
    assert simulator.call_count("confirm_intent") == 0
    assert Event.objects.filter(type="payment.captured").count() == 1


@pytest.mark.django_db
def test_replay_returns_the_stored_status_and_body(storefront, simulator):
    first = _post(storefront, BODY, "k-replay")

    again = _post(storefront, BODY, "k-replay")

    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Payment.objects.count() == 1
    assert Event.objects.count() == 2
    assert simulator.call_count("create_intent") == 1


@pytest.mark.django_db
def test_same_key_with_a_different_body_is_422(storefront):
    _post(storefront, BODY, "k-reuse")

    response = _post(storefront, {**BODY, "amount": 3000}, "k-reuse")

    assert response.status_code == 422
    assert response.json()["error"] == {
        "type": "idempotency_error",
        "code": "idempotency_key_reused",
        "message": "This Idempotency-Key was used with a different request.",
    }
    assert Payment.objects.count() == 1


@pytest.mark.django_db
def test_same_key_on_another_path_is_422(storefront):
    payment = _post(storefront, {**BODY, "confirm": False, "capture_method": "manual"}, "k-path").json()

    response = _post(storefront, {}, "k-path", path=f"/api/v1/payments/{payment['id']}/cancel/")

    assert response.status_code == 422
    assert Payment.objects.get(public_id=payment["id"]).status == "requires_confirmation"


@pytest.mark.django_db
def test_a_decline_is_replayed_as_402_without_a_second_gateway_call(storefront, simulator):
    body = {**BODY, "payment_method": "pm_card_chargeDeclined"}

    first = _post(storefront, body, "k-decline")
    again = _post(storefront, body, "k-decline")

    assert first.status_code == 402
    assert first.json()["error"]["code"] == "card_declined"
    assert again.status_code == 402
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert simulator.call_count("create_intent") == 1  # the one create + confirm, declined
    assert Payment.objects.get().status == "failed"


@pytest.mark.django_db
def test_a_400_is_not_stored_and_the_key_works_with_a_corrected_body(storefront):
    bad = _post(storefront, {**BODY, "amount": "2000"}, "k-fix")

    fixed = _post(storefront, BODY, "k-fix")

    assert bad.status_code == 400
    assert fixed.status_code == 201
    assert "Idempotent-Replayed" not in fixed
    assert Payment.objects.count() == 1


@pytest.mark.django_db
def test_a_409_state_error_is_stored_and_replayed(storefront, simulator):
    payment = _post(storefront, BODY, "k-create").json()

    first = _post(storefront, {}, "k-cancel", path=f"/api/v1/payments/{payment['id']}/cancel/")
    again = _post(storefront, {}, "k-cancel", path=f"/api/v1/payments/{payment['id']}/cancel/")

    assert first.status_code == 409
    assert again.status_code == 409
    assert again["Idempotent-Replayed"] == "true"
    assert simulator.call_count("cancel_intent") == 0


@pytest.mark.django_db
def test_a_request_while_the_first_is_in_flight_is_409(storefront):
    from rest_framework.test import APIRequestFactory

    from payments.idempotency import request_fingerprint

    factory_request = APIRequestFactory().post("/api/v1/payments/", BODY, format="json")
    from rest_framework.parsers import JSONParser
    from rest_framework.request import Request

    fingerprint = request_fingerprint(Request(factory_request, parsers=[JSONParser()]))
    idempotency_claim(client=storefront.user, key="k-busy", fingerprint=fingerprint)

    response = _post(storefront, BODY, "k-busy")

    assert response.status_code == 409
    assert response.json()["error"]["type"] == "idempotency_error"
    assert response.json()["error"]["code"] == "idempotency_key_in_use"
    assert Payment.objects.count() == 0


@pytest.mark.django_db
def test_keys_are_scoped_per_client(storefront, make_client):
    other = make_client("storefront-b")

    mine = _post(storefront, BODY, "shared-key")
    theirs = _post(other, BODY, "shared-key")

    assert mine.status_code == 201
    assert theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


@pytest.mark.django_db
def test_a_5xx_is_not_stored_and_the_retry_finishes_the_same_payment(storefront, simulator):
    SimulatorGateway.inject_fault("create_intent", "unavailable")

    first = _post(storefront, BODY, "k-outage")
    retry = _post(storefront, BODY, "k-outage")

    assert first.status_code == 502
    assert first.json()["error"] == {
        "type": "gateway_error",
        "code": "gateway_unavailable",
        "message": "The payment gateway is unavailable. The operation will be retried; retry later.",
    }
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry
    assert retry.json()["status"] == "succeeded"
    assert Payment.objects.count() == 1
    assert simulator.performed_count("create_intent") == 1
    assert simulator.call_count("create_intent") == 2  # the failed call, then the retry's, with the same key
    assert simulator.call_count("confirm_intent") == 0


@pytest.mark.django_db
def test_confirm_honours_an_optional_key(storefront, simulator):
    payment = _post(storefront, {**BODY, "confirm": False}, "k-c").json()
    path = f"/api/v1/payments/{payment['id']}/confirm/"

    first = _post(storefront, {}, "k-confirm", path=path)
    again = _post(storefront, {}, "k-confirm", path=path)
    without_key = storefront.post(path, {}, format="json")

    assert first.status_code == 200
    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert without_key.status_code == 409
    assert simulator.call_count("confirm_intent") == 1


@pytest.mark.django_db
def test_a_key_older_than_24_hours_starts_afresh_and_is_purged(storefront, capsys):
    _post(storefront, BODY, "k-old")

    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        again = _post(client_for(storefront.user), {**BODY, "amount": 5000}, "k-old")
        call_command("purge_idempotency_keys")

    assert again.status_code == 201
    assert again.json()["amount"] == 5000
    assert Payment.objects.count() == 2
    assert IdempotencyKey.objects.filter(key="k-old").count() == 1
    assert "Deleted 0 expired" in capsys.readouterr().out


@pytest.mark.django_db
def test_purge_deletes_only_expired_keys(storefront, capsys):
    _post(storefront, BODY, "k-1")
    with time_machine.travel(timezone.now() + timedelta(hours=12)):
        _post(client_for(storefront.user), BODY, "k-2")

    with time_machine.travel(timezone.now() + timedelta(hours=30)):
        call_command("purge_idempotency_keys")

    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["k-2"]
    assert "Deleted 1 expired" in capsys.readouterr().out
