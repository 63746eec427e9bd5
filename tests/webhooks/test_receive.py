"""The endpoint: verified events are stored once and acknowledged; everything else is a 400 that stores nothing."""

import json
import time

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from gateways.simulator import SimulatorGateway
from tests.webhooks import payloads
from tests.webhooks.conftest import SECRET, body_of, post, send, sign
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db


def _succeeded_event(**kwargs):
    intent = payloads.payment_intent("pi_3PgafYLkdIwHu7ix0abc", status="succeeded", amount_received=2000)
    return payloads.event("payment_intent.succeeded", intent, **kwargs)


def _assert_refused(response, code: str) -> None:
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == code
    assert error["message"]
    assert WebhookEvent.objects.count() == 0


def test_verified_event_is_stored_once_and_acknowledged(django_capture_on_commit_callbacks):
    event = _succeeded_event()
    body = body_of(event)

    with django_capture_on_commit_callbacks() as callbacks:
        response = post(body, sign(body))

    assert response.status_code == 200
    assert response.json() == {"received": True}
    row = WebhookEvent.objects.get()
    assert (row.stripe_id, row.type, row.api_version, row.livemode) == (
        event["id"],
        "payment_intent.succeeded",
        payloads.API_VERSION,
        False,
    )
    assert row.body == body
    assert row.created_at.timestamp() == event["created"]
    assert (row.status, row.received_via, row.attempts, row.processed_at) == ("received", "webhook", 0, None)
    assert len(callbacks) == 1  # processing is enqueued after commit, not before


def test_duplicate_delivery_is_acknowledged_and_changes_nothing(django_capture_on_commit_callbacks):
    event = _succeeded_event()

    with django_capture_on_commit_callbacks() as callbacks:
        first = send(event)
        again = send(event)

    assert first.status_code == again.status_code == 200
    assert again.json() == {"received": True}
    assert WebhookEvent.objects.count() == 1
    assert len(callbacks) == 1


def test_acknowledgement_is_one_insert_and_one_enqueue_without_gateway_or_lock(django_capture_on_commit_callbacks):
    body = body_of(_succeeded_event())
    signature = sign(body)

    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks() as callbacks:
        response = post(body, signature)

    assert response.status_code == 200
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 1
    assert statements[0].startswith('INSERT INTO "webhooks_webhookevent"')
    assert not any("FOR UPDATE" in q["sql"] for q in queries.captured_queries)
    assert len(callbacks) == 1
    assert SimulatorGateway.call_count("retrieve_intent") == 0


def test_the_endpoint_needs_no_csrf_token():
    body = body_of(_succeeded_event())

    response = post(body, sign(body), client=Client(enforce_csrf_checks=True))

    assert response.status_code == 200
    assert WebhookEvent.objects.count() == 1


def _tampered():
    body = body_of(_succeeded_event())
    return body.replace('"amount": 2000', '"amount": 1'), sign(body)


def _wrong_secret():
    body = body_of(_succeeded_event())
    return body, sign(body, secret="whsec_someone_else_0123456789")


def _old():
    body = body_of(_succeeded_event())
    return body, sign(body, timestamp=int(time.time()) - 301)


def _future():
    body = body_of(_succeeded_event())
    return body, sign(body, timestamp=int(time.time()) + 301)


def _missing_header():
    return body_of(_succeeded_event()), None


def _garbage_header():
    return body_of(_succeeded_event()), "this is not a signature"


def _signature_without_timestamp():
    body = body_of(_succeeded_event())
    return body, sign(body).split(",", 1)[1]


def _not_json():
    body = "event=payment_intent.succeeded&id=evt_1"
    return body, sign(body)


def _not_an_event():
    body = json.dumps({"id": "cus_1", "object": "customer", "email": "a@example.com"})
    return body, sign(body)


def _a_list():
    body = json.dumps([_succeeded_event()])
    return body, sign(body)


def _not_utf8():
    body = b'{"id": "evt_\xff"}'
    return body, sign(body.decode("latin-1"))


def _oversized():
    event = _succeeded_event()
    event["data"]["object"]["metadata"] = {f"k{i}": "x" * 500 for i in range(140)}  # ~70 KB
    body = body_of(event)
    return body, sign(body)


@pytest.mark.parametrize(
    ("make", "code"),
    [
        pytest.param(_tampered, "signature_invalid", id="tampered-body"),
        pytest.param(_wrong_secret, "signature_invalid", id="wrong-secret"),
        pytest.param(_old, "signature_invalid", id="timestamp-301s-old"),
        pytest.param(_future, "signature_invalid", id="timestamp-301s-in-the-future"),
        pytest.param(_missing_header, "signature_missing", id="missing-header"),
        pytest.param(_garbage_header, "signature_invalid", id="garbage-header"),
        pytest.param(_signature_without_timestamp, "signature_invalid", id="no-timestamp"),
        pytest.param(_not_json, "payload_invalid", id="not-json"),
        pytest.param(_not_an_event, "payload_invalid", id="json-not-an-event"),
        pytest.param(_a_list, "payload_invalid", id="json-list"),
        pytest.param(_not_utf8, "payload_invalid", id="not-utf8"),
        pytest.param(_oversized, "body_too_large", id="oversized-body"),
    ],
)
def test_bad_deliveries_are_400_and_store_nothing(make, code, django_capture_on_commit_callbacks):
    body, signature = make()

    with django_capture_on_commit_callbacks() as callbacks:
        response = post(body, signature)

    _assert_refused(response, code)
    assert callbacks == []


def test_timestamp_just_inside_the_tolerance_is_accepted():
    body = body_of(_succeeded_event())

    old = post(body, sign(body, timestamp=int(time.time()) - 290))
    other = body_of(_succeeded_event())
    ahead = post(other, sign(other, timestamp=int(time.time()) + 290))

    assert (old.status_code, ahead.status_code) == (200, 200)
    assert WebhookEvent.objects.count() == 2


def test_body_over_the_webhook_limit_is_refused(settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 1000
    body = body_of(_succeeded_event())
    assert len(body) > 1000

    response = post(body, sign(body))

    _assert_refused(response, "body_too_large")


def test_without_a_configured_secret_every_delivery_is_refused(settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    body = body_of(_succeeded_event())

    response = post(body, sign(body, secret=SECRET))

    _assert_refused(response, "signature_invalid")


def test_only_post_is_allowed():
    response = Client().get("/api/v1/webhooks/stripe/")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response["Allow"] == "POST"


@pytest.fixture
def broker_down():
    """Celery's broker unreachable (nothing listens on port 1): sending a task fails at once, as in an outage."""
    from config.celery import app

    keys = (
        "broker_url",
        "broker_write_url",
        "task_publish_retry",
        "broker_connection_timeout",
        "broker_transport_options",
    )
    saved = {key: app.conf[key] for key in keys}

    working_pools = (app._pool, app.amqp._producer_pool)
    app._pool, app.amqp._producer_pool = None, None  # new ones are made for the broken broker
    app.conf.update(
        broker_url="redis://127.0.0.1:1/0",
        broker_write_url=None,
        task_publish_retry=False,
        broker_connection_timeout=0.5,
        broker_transport_options={**saved["broker_transport_options"], "max_retries": 0},
    )
    yield
    app.conf.update(saved)
    broken_pool = app._pool
    app._pool, app.amqp._producer_pool = working_pools
    if broken_pool is not None:
        broken_pool.force_close_all()


@pytest.mark.django_db(transaction=True)
def test_a_broker_outage_after_commit_still_acknowledges_the_stored_event(broker_down):
    # given a broker that cannot be reached
    event = _succeeded_event()
    body = body_of(event)

    # when Stripe delivers (a real commit runs the robust on_commit callback that enqueues processing)
    response = post(body, sign(body))

    # then Stripe hears 200, the event is kept, and recovery will enqueue it
    assert (response.status_code, response.json()) == (200, {"received": True})
    assert WebhookEvent.objects.get(stripe_id=event["id"]).status == "received"
