"""The relay's batches on the real Redis broker: what another relay holds, a broker that refuses, the body."""

import json
import re
from contextlib import contextmanager

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from kombu import Connection

from events import locks, relay
from events.models import Event
from events.relay import outbox_relay
from events.services import event_record
from tests.events.brokers import assert_message_is_event, by_subject, consumer, drain
from tests.events.factories import EventFactory
from tests.helpers import row_locked_elsewhere


@contextmanager
def redis_refusing_writes():
    """The Redis broker answers every write with an out-of-memory error for the block (maxmemory 1 byte)."""
    with Connection(django_settings.EVENTS_BROKER_URL) as conn:
        client = conn.default_channel.client
        before = client.config_get("maxmemory")["maxmemory"]
        client.config_set("maxmemory", 1)
        try:
            yield
        finally:
            client.config_set("maxmemory", before)


@pytest.mark.parametrize("lock", [locks.lock_unpublished_batch, locks.lock_unpublished_batch_portable])
@pytest.mark.django_db(transaction=True)
def test_a_batch_skips_an_event_another_relay_holds_and_holds_back_the_later_ones_of_its_subject(
    shop, lock, monkeypatch
):
    monkeypatch.setattr(relay, "lock_unpublished_batch", lock)  # the PostgreSQL statement, and the portable one
    # given payment A's second event is locked by another relay, mid-batch
    a1 = EventFactory(client=shop, subject_id="pay_a")
    b1 = EventFactory(client=shop, subject_id="pay_b")
    a2 = EventFactory(client=shop, subject_id="pay_a", type="payment.captured")
    a3 = EventFactory(client=shop, subject_id="pay_a", type="payment.refunded")
    b2 = EventFactory(client=shop, subject_id="pay_b", type="payment.captured")

    with consumer(django_settings.EVENTS_BROKER_URL, "t-held") as queue:
        with row_locked_elsewhere(a2):
            # when this relay runs
            published = outbox_relay()
            first_run = [m.properties["message_id"] for m in drain(queue)]
        # then it publishes around it, and A's later event waits for it
        after_release = outbox_relay()
        second_run = [m.properties["message_id"] for m in drain(queue)]

    assert published == 3
    assert first_run == [a1.public_id, b1.public_id, b2.public_id]
    assert a3.public_id not in first_run
    assert after_release == 2
    assert second_run == [a2.public_id, a3.public_id]
    assert Event.objects.get(pk=a3.pk).publish_attempts == 1  # held back is not a failed attempt


@pytest.mark.django_db
def test_when_the_broker_refuses_a_batch_nothing_is_marked_and_it_goes_again_in_order(shop):
    # given two payments' events
    events = [
        EventFactory(client=shop, subject_id=subject, type=f"payment.step{n}")
        for n in range(3)
        for subject in ("pay_a", "pay_b")
    ]

    with consumer(django_settings.EVENTS_BROKER_URL, "t-refused") as queue:
        # when the broker refuses writes during a run
        with redis_refusing_writes():
            refused = outbox_relay()
        attempts = dict(Event.objects.values_list("public_id", "publish_attempts"))
        # and accepts them again on the next
        published = outbox_relay()
        messages = drain(queue)

    # then the failed run marked nothing and counted one attempt for each payment's first event
    assert refused == 0
    assert attempts == {e.public_id: 1 if e in events[:2] else 0 for e in events}
    # and the next run published everything once, each payment's events in order
    assert published == 6
    assert sorted(m.properties["message_id"] for m in messages) == sorted(e.public_id for e in events)
    assert by_subject(messages) == {
        "pay_a": [e.sequence for e in events[0::2]],
        "pay_b": [e.sequence for e in events[1::2]],
    }


@pytest.mark.django_db
def test_after_max_attempts_an_event_is_dead_lettered_and_the_rest_of_its_subject_goes(shop, settings):
    settings.OUTBOX_MAX_PUBLISH_ATTEMPTS = 2
    stuck = EventFactory(client=shop, subject_id="pay_a")
    later = EventFactory(client=shop, subject_id="pay_a", type="payment.captured")

    with consumer(django_settings.EVENTS_BROKER_URL, "t-dead-after") as queue:
        with redis_refusing_writes():
            outbox_relay()
            outbox_relay()
        published = outbox_relay()
        messages = drain(queue)

    assert Event.objects.get(pk=stuck.pk).publish_attempts == 2
    assert Event.objects.get(pk=stuck.pk).published_at is None
    assert published == 1
    assert [m.properties["message_id"] for m in messages] == [later.public_id]


@pytest.mark.django_db
def test_the_message_body_is_the_event_exactly_as_the_feed_renders_it(storefront):
    with transaction.atomic():
        event_record(
            type="payment.captured",
            client_id=storefront.user.pk,
            subject_type="payment",
            subject_id="pay_body",
            data={"id": "pay_body", "description": 'Café ✓ "quoted" \\ back', "amount": 1999, "nested": [1.5, None]},
        )
    event = Event.objects.get()

    with consumer(django_settings.EVENTS_BROKER_URL, "t-body") as queue:
        outbox_relay()
        (message,) = drain(queue)
    feed = storefront.get("/api/v1/events/").json()["results"]

    assert_message_is_event(message, event)
    assert json.loads(message.body) == feed[0]


@pytest.mark.django_db
def test_batches_of_any_size_are_marked_published_by_one_statement_shape(shop):
    """`= ANY(array)`: one statement psycopg prepares once, where an IN list made a new one per batch size."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    marks: list[str] = []
    for size in (3, 5):
        made = [EventFactory(client=shop, subject_id=f"pay_{size}_{n}") for n in range(size)]
        with (
            consumer(django_settings.EVENTS_BROKER_URL, f"t-shape-{size}") as queue,
            CaptureQueriesContext(connection) as queries,
        ):
            assert outbox_relay() == size
            assert len(drain(queue)) == size
        marks += [q["sql"] for q in queries if q["sql"].startswith("UPDATE")]
        stored = Event.objects.filter(pk__in=[event.pk for event in made])
        assert sorted(stored.values_list("publish_attempts", flat=True)) == [1] * size
        assert not stored.filter(published_at__isnull=True).exists()

    assert len(marks) == 2
    shapes = {re.sub(r"'[^']*'", "?", sql) for sql in marks}  # the values apart (quoted into the log's copy)
    assert len(shapes) == 1, marks
    assert "= ANY(" in marks[0]
