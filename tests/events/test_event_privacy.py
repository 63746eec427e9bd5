"""Events carry no secret and no personal data, have `schema_version: 1`, and leave for the broker as the feed
shows them: every event type the service writes, made by its real flow on the simulator (issue #20)."""

import io
import json
import logging
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from disputes.models import Dispute
from events.models import Event
from events.payloads import UnsafeEventPayload
from events.relay import outbox_relay
from events.services import event_record
from gateways.simulator import SimulatorGateway
from payments.models import Payment
from payments.services.staff import payment_override_status
from risk.services import review_approve
from subscriptions.models import Invoice
from tests.accounts.factories import StaffUserFactory
from tests.customers.conftest import put_customer
from tests.events.brokers import consumer, drain
from tests.risk.conftest import HELD
from tests.risk.factories import RiskSettingsFactory
from tests.subscriptions.conftest import DAY
from tests.webhooks import payloads
from webhooks.test_helpers import deliver_simulator_disputes

pytestmark = pytest.mark.django_db

# Every type docs/api.md names ("Events", the sections it points to, and its "This implementation" notes).
DOCUMENTED_TYPES = frozenset(
    {
        "payment.initiated",
        "payment.requires_action",
        "payment.processing",
        "payment.authorized",
        "payment.captured",
        "payment.failed",
        "payment.canceled",
        "payment.refunded",
        "payment.review_opened",
        "payment.review_closed",
        "payment.status_overridden",
        "payment.dispute_opened",
        "refund.created",
        "refund.succeeded",
        "refund.failed",
        "refund.canceled",
        "customer.created",
        "customer.updated",
        "customer.deleted",
        "payment_method.attached",
        "payment_method.detached",
        "subscription.created",
        "subscription.updated",
        "subscription.trial_will_end",
        "subscription.past_due",
        "subscription.canceled",
        "invoice.created",
        "invoice.paid",
        "invoice.payment_failed",
        "dispute.created",
        "dispute.updated",
        "dispute.funds_withdrawn",
        "dispute.funds_reinstated",
        "dispute.closed",
    }
)
# What docs/api.md "Personal data" forbids in an event, as keys (at any depth) ...
FORBIDDEN_KEYS = {
    "client_secret",
    "hosted_invoice_url",
    "email",
    "customer_email",
    "customer_email_address",
    "ip",
    "ip_address",
    "customer_ip",
    "customer_name",
    "phone",
    "billing_details",
    "shipping",
    "evidence",
}
# ... and as the values this test hands the service (anywhere in the JSON text).
EMAIL, NAME, IP = "ada.lovelace@example.com", "Ada Lovelace", "203.0.113.77"
NAMED_OBJECTS = {"customer", "payment_method"}  # where `name` is a person's (a product's is not)


@pytest.fixture(autouse=True)
def _simulator_gateway(settings):
    settings.PAYMENTS_GATEWAY = "simulator"


@pytest.fixture
def strict(settings):
    """The outbox refuses a leaking event instead of stripping it: the renderers themselves must be clean."""
    settings.EVENTS_STRICT_PAYLOADS = True


def _pay(storefront, key: str, **body: Any) -> dict[str, Any]:
    fields = {"amount": 2000, "currency": "usd", "customer_id": f"cus_{key}", **body}
    response = storefront.post("/api/v1/payments/", fields, format="json", HTTP_IDEMPOTENCY_KEY=f"privacy-{key}")
    assert response.status_code in (201, 402), response.json()
    return response.json()


def _forbidden_in(obj: Any, path: str = "") -> list[str]:
    found = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            where = f"{path}.{key}"
            if key in FORBIDDEN_KEYS or (key == "name" and obj.get("object") in NAMED_OBJECTS):
                found.append(where)
            found += _forbidden_in(value, where)
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            found += _forbidden_in(value, f"{path}[{index}]")
    return found


def _text(message: Any) -> str:
    return message.body if isinstance(message.body, str) else message.body.decode()


def _feed(client) -> list[dict[str, Any]]:
    events, url = [], "/api/v1/events/?page_size=100"
    while url:
        page = client.get(url).json()
        events += page["results"]
        url = page["next"]
    return events


def _every_flow(storefront, deliver, subscribe, advance, django_capture_on_commit_callbacks) -> None:
    """Drive every flow that writes an event, through the API, the webhooks and the staff services."""
    RiskSettingsFactory()
    staff, other_staff = StaffUserFactory(username="privacy-1"), StaffUserFactory(username="privacy-2")
    personal = {"customer_email": EMAIL, "customer_ip": IP}

    def run(call):
        with django_capture_on_commit_callbacks(execute=True):
            return call()

    # customers and saved cards: created, updated, attached, detached, deleted at the gateway
    assert put_customer(storefront, "cus_42", email=EMAIL, name=NAME).status_code == 201
    card = run(lambda: saved_card_for(storefront))
    put_customer(storefront, "cus_42", name=f"{NAME} II", metadata={"note": "vip"})
    storefront.delete(f"/api/v1/payment_methods/{card['id']}/")
    assert put_customer(storefront, "cus_gone", email=EMAIL, name=NAME).status_code == 201
    gone = payloads.event(
        "customer.deleted",
        {
            "id": storefront.get("/api/v1/customers/cus_gone/").json()["gateway_reference"],
            "object": "customer",
            "email": EMAIL,
            "name": NAME,
            "deleted": True,
            "metadata": {},
        },
    )
    deliver(gone)

    # a dispute (first: before the velocity rules hold this e-mail's payments): opened (the payment flagged),
    # funds withdrawn, evidence with personal data, won
    run(lambda: _pay(storefront, "disputed", payment_method="pm_card_createDispute", confirm=True, **personal))
    run(deliver_simulator_disputes)
    dispute = Dispute.objects.get()
    evidence = {"customer_name": NAME, "customer_email_address": EMAIL, "uncategorized_text": f"IP {IP}"}
    finance = storefront.finance
    for body in ({"evidence": evidence}, {"submit": True}):
        answered = run(
            lambda body=body: finance.post(f"/api/v1/disputes/{dispute.public_id}/evidence/", body, format="json")
        )
        assert answered.status_code == 200, answered.json()
    run(deliver_simulator_disputes)
    for event in SimulatorGateway().close_dispute_as(reference=dispute.gateway_reference, outcome="won"):
        deliver(event)

    # payments: authorized then captured, refunded; canceled; failed; 3-D Secure; a confirm that timed out
    manual = run(
        lambda: _pay(
            storefront, "manual", payment_method="pm_card_visa", capture_method="manual", confirm=True, **personal
        )
    )
    run(lambda: storefront.post(f"/api/v1/payments/{manual['id']}/capture/", {}, format="json"))
    refunded = run(
        lambda: storefront.post(
            f"/api/v1/payments/{manual['id']}/refunds/", {"amount": 500}, format="json", HTTP_IDEMPOTENCY_KEY="r-1"
        )
    )
    assert refunded.status_code == 201, refunded.json()
    later = _pay(storefront, "later", **personal)
    storefront.post(f"/api/v1/payments/{later['id']}/cancel/", {}, format="json")
    _pay(storefront, "declined", payment_method="pm_card_chargeDeclined", confirm=True, **personal)
    _pay(storefront, "3ds", payment_method="pm_card_threeDSecure2Required", confirm=True, **personal)
    slow = _pay(storefront, "slow", payment_method="pm_card_visa", **personal)
    SimulatorGateway.inject_fault("confirm_intent", "timeout")
    storefront.post(f"/api/v1/payments/{slow['id']}/confirm/", {}, format="json")

    # refunds the gateway fails and cancels (pending here: their submission never ran)
    paid = run(lambda: _pay(storefront, "paid", amount=10_000, payment_method="pm_card_visa", confirm=True))
    for n, status in enumerate(("failed", "canceled")):
        pending = storefront.post(
            f"/api/v1/payments/{paid['id']}/refunds/", {"amount": 100}, format="json", HTTP_IDEMPOTENCY_KEY=f"rp-{n}"
        ).json()
        told = payloads.refund(
            f"re_privacy_{n}",
            intent=paid["gateway_reference"],
            amount=100,
            status=status,
            failure_reason="expired_or_canceled_card" if status == "failed" else None,
            metadata={"refund_id": pending["id"], "payment_id": paid["id"]},
        )
        deliver(payloads.event("refund.updated", told))

    # a review opened and closed by staff; a status overridden by staff
    held = _pay(storefront, "held", **{**HELD, "customer_id": "cus_held"}, payment_method="pm_card_visa", confirm=True)
    assert held["review"]["state"] == "pending"
    review_approve(payment_id=Payment.objects.get(public_id=held["id"]).pk, actor=staff, reason="Known customer")
    payment_override_status(
        payment_id=Payment.objects.get(public_id=later["id"]).pk,
        to_status="failed",
        actor=other_staff,
        reason="Checked with the bank",
    )

    # a subscription: trial (ends in 3 days), paid, its card changed and declined (past due), canceled
    created = subscribe(customer_id="cus_42", trial_days=14)
    assert created.status_code == 201, created.json()
    sub = created.json()
    advance(11 * DAY)
    advance(3 * DAY)
    storefront.patch(
        f"/api/v1/subscriptions/{sub['id']}/", {"payment_method": "pm_card_chargeCustomerFail"}, format="json"
    )
    advance(32 * DAY)
    run(lambda: storefront.post(f"/api/v1/subscriptions/{sub['id']}/cancel/", {}, format="json"))


def saved_card_for(storefront) -> dict[str, Any]:
    response = storefront.post(
        "/api/v1/customers/cus_42/payment_methods/", {"payment_method": "pm_card_visa"}, format="json"
    )
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def storefront_and_finance(storefront, finance):
    storefront.finance = finance
    return storefront


def test_every_event_type_is_free_of_secrets_and_personal_data_in_the_feed_and_on_the_broker(
    strict,
    storefront_and_finance,
    deliver,
    subscribe,
    advance,
    django_capture_on_commit_callbacks,
):
    storefront = storefront_and_finance
    with consumer(django_settings.EVENTS_BROKER_URL, "t-privacy") as queue:
        # given every flow that writes an event
        _every_flow(storefront, deliver, subscribe, advance, django_capture_on_commit_callbacks)
        # when the relay publishes what the flows' own relays did not
        outbox_relay()
        messages = {message.properties["message_id"]: message for message in drain(queue)}
    feed = _feed(storefront.finance)

    # then every documented type was written, and no type the contract does not name
    types = {event["type"] for event in feed}
    assert types == DOCUMENTED_TYPES, (sorted(DOCUMENTED_TYPES - types), sorted(types - DOCUMENTED_TYPES))
    assert len(feed) == Event.objects.count()
    # the secrets and personal data the service holds, besides what this test gave it
    secrets = {secret for secret in Payment.objects.values_list("client_secret", flat=True) if secret}
    secrets |= {url for url in Invoice.objects.values_list("hosted_invoice_url", flat=True) if url}
    assert secrets, "the flows made payments with client secrets"
    for event in feed:
        # the broker message is the feed's event object, byte for byte in meaning
        message = messages[event["id"]]
        body = json.loads(message.body)
        assert body == event
        assert message.headers["schema_version"] == 1
        assert event["schema_version"] == 1
        assert _forbidden_in(event) == [], event
        for value in (EMAIL, NAME, IP, *secrets):
            assert value not in _text(message), (event["type"], value)
    assert set(messages) == {event["id"] for event in feed}


def test_a_replay_republishes_events_with_their_schema_version_as_the_feed_shows_them(storefront, create_payment):
    create_payment(payment_method="pm_card_visa", confirm=True, customer_email=EMAIL, customer_ip=IP)
    with consumer(django_settings.EVENTS_BROKER_URL, "t-privacy-replay") as queue:
        call_command("replay_events", stdout=io.StringIO())
        replayed = drain(queue)
    feed = storefront.get("/api/v1/events/").json()["results"]

    assert [json.loads(message.body) for message in replayed] == feed
    assert {(m.headers["replay"], m.headers["schema_version"]) for m in replayed} == {(True, 1)}
    assert [event["type"] for event in feed] == ["payment.initiated", "payment.captured"]
    assert all(value not in _text(message) for message in replayed for value in (EMAIL, IP))
    assert all("client_secret" not in event["data"]["object"] for event in feed)


def test_a_leaking_renderer_is_refused_when_strict(strict, shop):
    leaky = {"id": "pay_1", "object": "payment", "client_secret": "pi_1_secret_x", "lines": [{"email": EMAIL}]}

    with pytest.raises(UnsafeEventPayload, match=r"client_secret, lines\[0\]\.email"):
        event_record(type="payment.captured", client_id=shop.pk, subject_type="payment", subject_id="pay_1", data=leaky)

    assert not Event.objects.exists()


def test_in_production_a_leaking_renderer_is_stripped_and_logged(settings, shop, caplog):
    settings.EVENTS_STRICT_PAYLOADS = False
    leaky = {
        "id": "cu_1",
        "object": "customer",
        "name": NAME,
        "customer_id": "cus_1",
        "product": {"object": "product", "name": "Basic"},
        "shipping": {"name": NAME},
    }

    with caplog.at_level(logging.ERROR, logger="events.services"):
        event = event_record(
            type="customer.updated", client_id=shop.pk, subject_type="customer", subject_id="cu_1", data=leaky
        )

    event.refresh_from_db()
    assert event.data == {
        "id": "cu_1",
        "object": "customer",
        "customer_id": "cus_1",
        "product": {"object": "product", "name": "Basic"},
    }
    assert event.schema_version == 1
    (record,) = caplog.records
    assert (record.getMessage(), record.keys) == ("Event payload held forbidden keys; stripped", ["name", "shipping"])
