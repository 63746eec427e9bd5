"""The outbox relay on the real Redis broker: every event published, in order, at least once."""

import json
from contextlib import contextmanager

import factory
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import transaction
from kombu import Connection, Queue

from accounts.models import User
from events.models import Event
from events.relay import EXCHANGE, outbox_relay
from payments import services
from payments.models import Payment
from tests.events.factories import EventFactory
from tests.helpers import run_in_threads, wait_for
from tests.payments.factories import PaymentFactory


@contextmanager
def consumer(name: str):
    """A queue bound to `payment.events` for every routing key, empty at the start."""
    with Connection(settings.EVENTS_BROKER_URL) as conn:
        queue = Queue(name, EXCHANGE, routing_key="#")(conn.default_channel)
        queue.declare()
        queue.purge()
        yield queue
        queue.delete()


def drain(queue) -> list:
    messages = []
    while (message := queue.get(no_ack=True)) is not None:
        messages.append(message)
    return messages


def _payments(count: int, client: User) -> None:
    for _ in range(count):
        services.payment_create(
            client=client, amount=1000, currency="usd", customer_id="c", payment_method="pm_card_visa", confirm=True
        )


@pytest.mark.django_db
def test_a_burst_is_published_in_sequence_order_and_marked(shop):
    _payments(5, shop)  # 2 events each
    with consumer("t-burst") as queue:
        published = outbox_relay(batch_size=3)
        messages = drain(queue)

    expected = list(Event.objects.order_by("sequence"))
    assert published == 10
    assert [m.properties["message_id"] for m in messages] == [e.public_id for e in expected]
    assert [m.delivery_info["routing_key"] for m in messages] == [e.type for e in expected]
    first = messages[0]
    assert first.headers["event_type"] == expected[0].type
    assert first.headers["sequence"] == expected[0].sequence
    assert first.headers["payment_id"] == expected[0].subject_id
    body = json.loads(first.body)
    assert body["id"] == expected[0].public_id
    assert body["data"]["object"]["id"] == expected[0].subject_id
    assert Event.objects.filter(published_at__isnull=True).count() == 0
    assert outbox_relay() == 0


@pytest.mark.django_db(transaction=True)
def test_two_relays_at_once_publish_every_one_of_1000_events_in_order_per_payment(shop):
    for n in range(25):  # 25 payments x 40 events (one customer each, below the risk rules' velocity limits)
        payment = services.payment_create(client=shop, amount=1000, currency="usd", customer_id=f"c{n}")
        Event.objects.bulk_create(
            EventFactory.build_batch(
                39, payment=payment, type="payment.test", data=factory.Iterator([{"n": n} for n in range(39)])
            )
        )
    assert Event.objects.count() == 1000

    with consumer("t-two-relays") as queue:
        counts = run_in_threads([lambda: outbox_relay(batch_size=40), lambda: outbox_relay(batch_size=40)])
        while Event.objects.filter(published_at__isnull=True).exists():
            outbox_relay(batch_size=40)
        messages = drain(queue)

    assert not any(isinstance(count, Exception) for count in counts)
    ids = [m.properties["message_id"] for m in messages]
    assert len(set(ids)) == 1000
    by_payment: dict[str, list[int]] = {}
    for message in messages:
        by_payment.setdefault(message.headers["payment_id"], []).append(message.headers["sequence"])
    bad = {p: s for p, s in by_payment.items() if s != sorted(s)}
    assert not bad, {p: s[:12] for p, s in bad.items()}


class Crash(Exception):
    pass


def _relay_then_die() -> None:
    """Publish and mark inside a transaction that never commits: the process died before COMMIT."""
    with transaction.atomic():
        outbox_relay()
        raise Crash


@pytest.mark.django_db(transaction=True)
def test_a_relay_that_dies_before_marking_publishes_again_next_time(shop):
    _payments(2, shop)

    with consumer("t-crash") as queue:
        with pytest.raises(Crash):
            _relay_then_die()
        after_crash = Event.objects.filter(published_at__isnull=True).count()
        outbox_relay()
        messages = drain(queue)

    ids = [m.properties["message_id"] for m in messages]
    assert after_crash == 4
    assert len(ids) == 8  # each event twice: at least once, never lost
    assert set(ids) == set(Event.objects.values_list("public_id", flat=True))
    assert Event.objects.filter(published_at__isnull=True).count() == 0


@pytest.mark.django_db
def test_a_dead_lettered_event_is_skipped_without_blocking_the_rest(shop, settings):
    # given two payments with two events each, the first one dead-lettered (out of publish attempts)
    first, second = PaymentFactory.create_batch(2, client=shop)
    stuck = EventFactory(payment=first, publish_attempts=settings.OUTBOX_MAX_PUBLISH_ATTEMPTS)
    EventFactory(payment=first, type="payment.captured")
    EventFactory.create_batch(2, payment=second)

    with consumer("t-dead") as queue:
        published = outbox_relay()
        messages = drain(queue)

    assert published == 3
    assert stuck.public_id not in [m.properties["message_id"] for m in messages]
    assert Event.objects.get(pk=stuck.pk).published_at is None


@pytest.mark.django_db(transaction=True)
def test_the_relay_runs_after_commit_on_a_real_worker(storefront, worker):
    with consumer("t-trigger") as queue:
        response = storefront.post(
            "/api/v1/payments/",
            {"amount": 2000, "currency": "usd", "customer_id": "c", "payment_method": "pm_card_visa", "confirm": True},
            format="json",
            HTTP_IDEMPOTENCY_KEY="trigger",
        )
        wait_for(lambda: not Event.objects.filter(published_at__isnull=True).exists())
        messages = wait_for(lambda: drain(queue) or None)

    assert response.status_code == 201
    assert {m.properties["message_id"] for m in messages} <= set(Event.objects.values_list("public_id", flat=True))
    assert Event.objects.filter(published_at__isnull=False).count() == 2


@pytest.mark.django_db
def test_replay_events_republishes_marked_as_replays(shop, capsys):
    _payments(3, shop)
    outbox_relay()
    payment = Payment.objects.get(public_id=Event.objects.order_by("sequence").first().subject_id)

    with consumer("t-replay") as queue:
        call_command("replay_events", "--payment", payment.public_id)
        one_payment = drain(queue)
        call_command("replay_events", "--type", "payment.captured")
        captured = drain(queue)

    output = capsys.readouterr().out
    assert [m.properties["message_id"] for m in one_payment] == list(
        Event.objects.filter(subject_id=payment.public_id).order_by("sequence").values_list("public_id", flat=True)
    )
    assert all(m.headers["replay"] is True for m in one_payment)
    assert len(captured) == 3
    assert "Replayed 2 event(s)." in output
    assert "Replayed 3 event(s)." in output


@pytest.mark.django_db
def test_the_event_admin_lists_dead_lettered_events(shop, admin_client, settings):
    payment = PaymentFactory(client=shop)
    dead = EventFactory(payment=payment, publish_attempts=settings.OUTBOX_MAX_PUBLISH_ATTEMPTS)
    EventFactory(payment=payment, type="payment.captured")

    page = admin_client.get("/admin/events/event/?publishing=dead").content.decode()

    assert dead.public_id in page
    assert Event.objects.exclude(pk=dead.pk).get().public_id not in page
