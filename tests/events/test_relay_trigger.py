"""The relay trigger is debounced: one relay waits however many commits write events; none is ever missed."""

import time

import pytest
from django.core.cache import cache
from django.db import transaction

from config import tasks
from events.locks import RELAY_GUARD_KEY
from events.models import Event
from events.services import event_record
from events.tasks import relay_outbox
from tests.accounts.factories import UserFactory
from tests.helpers import wait_for, wait_until_due

pytestmark = pytest.mark.django_db(transaction=True)


RELAY = "events.tasks.relay_outbox"


def _relays(broker_queue) -> list:
    return [task for task in broker_queue("events") if task.name == RELAY]


def _commit_an_event(client) -> None:
    with transaction.atomic():
        event_record(type="payment.initiated", client_id=client.pk, subject_type="payment", subject_id="pay_1", data={})


def test_many_commits_schedule_one_relay_a_moment_later(settings, broker_queue):
    # given
    settings.OUTBOX_RELAY_DELAY_MS = 50
    client = UserFactory()

    # when fifty transactions commit events before the relay runs
    for _ in range(50):
        _commit_an_event(client)

    # then one relay is waiting on the broker, due a moment after the first commit
    relays = _relays(broker_queue)
    assert len(relays) == 1
    assert relays[0].eta is not None
    assert cache.get(RELAY_GUARD_KEY) == 1


def test_a_commit_after_the_relay_started_schedules_another(settings, broker_queue):
    # given a relay was scheduled and has started, its delay over (it clears the guard before reading the outbox)
    settings.OUTBOX_RELAY_DELAY_MS = 50
    client = UserFactory()
    _commit_an_event(client)
    wait_until_due(_relays(broker_queue)[0].eta)
    relay_outbox.run()

    # when another transaction commits an event
    _commit_an_event(client)

    # then a second relay is scheduled for it
    assert len(_relays(broker_queue)) == 2


def test_without_a_delay_every_commit_triggers_the_relay(settings, broker_queue):
    settings.OUTBOX_RELAY_DELAY_MS = 0
    client = UserFactory()

    _commit_an_event(client)
    _commit_an_event(client)

    relays = _relays(broker_queue)
    assert [relay.eta for relay in relays] == [None, None]


def test_commits_just_after_this_process_sent_the_relay_need_no_guard(settings, broker_queue):
    # given this process sent a relay, due in 2 s, and its guard is gone (expired, or the cache emptied)
    settings.OUTBOX_RELAY_DELAY_MS = 2000
    client = UserFactory()
    _commit_an_event(client)
    cache.delete(RELAY_GUARD_KEY)

    # when more transactions commit events in the first half of that delay
    for _ in range(5):
        _commit_an_event(client)

    # then nothing more is sent, nor a guard set: the waiting relay has not started and will see their rows
    assert len(_relays(broker_queue)) == 1
    assert cache.get(RELAY_GUARD_KEY) is None


def test_after_half_the_delay_a_commit_asks_the_guard_again(settings, broker_queue):
    # given this process sent a relay due in 100 ms, whose guard is gone, and half that time has passed
    settings.OUTBOX_RELAY_DELAY_MS = 100
    client = UserFactory()
    _commit_an_event(client)
    cache.delete(RELAY_GUARD_KEY)
    wait_for(lambda: time.monotonic() >= tasks._sent_until[RELAY_GUARD_KEY], interval=0.005)

    # when another transaction commits an event
    _commit_an_event(client)

    # then it no longer counts on that relay: with no guard standing, it sends one of its own
    assert len(_relays(broker_queue)) == 2
    assert cache.get(RELAY_GUARD_KEY) == 1


def test_inline_relays_run_for_every_commit(settings, tasks_inline):
    # given tasks run inline (make run): a relay "sent" has already run
    settings.OUTBOX_RELAY_DELAY_MS = 2000
    client = UserFactory()
    _commit_an_event(client)

    # when another transaction commits an event at once
    _commit_an_event(client)

    # then its relay runs too and publishes it: nothing waits for the sweep
    from events.models import Event

    assert Event.objects.filter(published_at__isnull=True).count() == 0


def test_a_request_that_commits_events_twice_nudges_the_relay_once_at_its_end(settings, broker_queue, storefront):
    # given no debounce delay: every nudge sends a relay
    settings.OUTBOX_RELAY_DELAY_MS = 0
    body = {"amount": 2000, "currency": "usd", "customer_id": "c", "payment_method": "pm_card_visa", "confirm": True}

    # when a create + confirm commits its payment's events, makes its gateway call, then commits the answer's
    response = storefront.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY="nudge-once")

    # then both transactions wrote events, and the request sent one relay for them, at its end
    assert response.status_code == 201, response.json()
    assert Event.objects.filter(subject_id=response.json()["id"]).count() >= 2
    assert len(_relays(broker_queue)) == 1
