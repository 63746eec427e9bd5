"""The relay trigger is debounced: one relay waits however many commits write events; none is ever missed."""

import pytest
from django.core.cache import cache
from django.db import transaction

from events.locks import RELAY_GUARD_KEY
from events.services import event_record
from events.tasks import relay_outbox
from tests.accounts.factories import UserFactory

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
    # given a relay was scheduled and has started (it clears the guard before reading the outbox)
    settings.OUTBOX_RELAY_DELAY_MS = 50
    client = UserFactory()
    _commit_an_event(client)
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
