"""The outbox relay and Celery on a real RabbitMQ node (scripts/with-services.sh), with publisher confirms."""

import pytest

from events.models import Event
from events.relay import outbox_relay
from tests.events.brokers import assert_message_is_event, by_subject, consumer, drain
from tests.events.factories import EventFactory
from tests.helpers import run_in_threads, wait_for


@pytest.fixture
def on_rabbitmq(settings, rabbitmq_url) -> str:
    """The relay publishes to RabbitMQ."""
    settings.EVENTS_BROKER_URL = rabbitmq_url
    return rabbitmq_url


@pytest.fixture
def worker_broker_url(rabbitmq_url) -> str:
    """The `worker` fixture (tests/conftest.py) runs on RabbitMQ in this module, and tasks are sent there."""
    return rabbitmq_url


def _interleaved_events(shop, subjects: int, per_subject: int) -> list[Event]:
    """`per_subject` events for each of `subjects` payments, written round-robin (their sequences interleave)."""
    ids = [f"pay_rabbit_{n}" for n in range(subjects)]
    return Event.objects.bulk_create(
        [
            EventFactory.build(client=shop, subject_id=subject, type=f"payment.step{step}", data={"step": step})
            for step in range(per_subject)
            for subject in ids
        ]
    )


@pytest.mark.django_db(transaction=True)
def test_two_relays_publish_every_event_once_in_order_per_subject_with_the_headers_of_redis(shop, on_rabbitmq):
    _interleaved_events(shop, subjects=20, per_subject=15)  # 300 events

    with consumer(on_rabbitmq, "t-rabbit-relays") as queue:
        counts = run_in_threads([lambda: outbox_relay(batch_size=40), lambda: outbox_relay(batch_size=40)])
        while Event.objects.filter(published_at__isnull=True).exists():
            outbox_relay(batch_size=40)
        messages = drain(queue)

    assert not any(isinstance(count, Exception) for count in counts), counts
    events = {event.public_id: event for event in Event.objects.all()}
    assert sorted(m.properties["message_id"] for m in messages) == sorted(events)  # each once
    arrived = by_subject(messages)
    assert {subject: sequences for subject, sequences in arrived.items() if sequences != sorted(sequences)} == {}
    for message in messages:
        assert_message_is_event(message, events[message.properties["message_id"]])
        assert message.properties["delivery_mode"] == 2  # persistent: confirmed once RabbitMQ has it on disk
    assert not Event.objects.filter(published_at__isnull=True).exists()


@pytest.mark.django_db
def test_an_event_the_broker_refuses_stays_unpublished_and_its_subject_keeps_its_order(shop, on_rabbitmq):
    # given a queue that takes 3 messages and refuses more (RabbitMQ nacks the rest under publisher confirms)
    first = EventFactory(client=shop, subject_id="pay_a", type="payment.initiated")
    second = EventFactory(client=shop, subject_id="pay_b", type="payment.initiated")
    third = EventFactory(client=shop, subject_id="pay_a", type="payment.captured")
    refused = EventFactory(client=shop, subject_id="pay_b", type="payment.captured")
    after_refused = EventFactory(client=shop, subject_id="pay_b", type="payment.refunded")

    with consumer(on_rabbitmq, "t-rabbit-full", **{"x-max-length": 3, "x-overflow": "reject-publish"}) as queue:
        # when the relay runs while the queue is full after three
        published = outbox_relay()
        stored = {event.pk: event for event in Event.objects.all()}
        taken = drain(queue)
        # and again once a consumer emptied it
        published_later = outbox_relay()
        later = drain(queue)

    # then only the confirmed events were marked; the refused one counted an attempt, the one after it waited
    assert published == 3
    assert [m.properties["message_id"] for m in taken] == [first.public_id, second.public_id, third.public_id]
    assert stored[refused.pk].published_at is None
    assert stored[refused.pk].publish_attempts == 1
    assert stored[after_refused.pk].published_at is None
    assert stored[after_refused.pk].publish_attempts == 0
    # and the next run sent pay_b's events in their order
    assert published_later == 2
    assert [m.properties["message_id"] for m in later] == [refused.public_id, after_refused.public_id]
    assert Event.objects.get(pk=refused.pk).publish_attempts == 2


@pytest.mark.django_db(transaction=True)
def test_a_celery_worker_on_rabbitmq_relays_the_events_of_an_api_payment(storefront, on_rabbitmq, worker):
    from config.celery import app

    with consumer(on_rabbitmq, "t-rabbit-worker") as queue:
        response = storefront.post(  # its commits send the relay task to RabbitMQ
            "/api/v1/payments/",
            {"amount": 2000, "currency": "usd", "customer_id": "c", "payment_method": "pm_card_visa", "confirm": True},
            format="json",
            HTTP_IDEMPOTENCY_KEY="rabbit-worker",
        )
        wait_for(lambda: Event.objects.exists() and not Event.objects.filter(published_at__isnull=True).exists())
        messages = wait_for(lambda: drain(queue) or None)

    assert response.status_code == 201
    assert app.connection_for_write().transport.driver_type == "amqp"  # the task went through RabbitMQ
    events = list(Event.objects.order_by("sequence"))
    assert [m.properties["message_id"] for m in messages] == [event.public_id for event in events]
    for message, event in zip(messages, events, strict=True):
        assert_message_is_event(message, event)
