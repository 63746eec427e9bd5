"""Processing stored events: one debounced drain task for any backlog, failures retried by the per-event task.

The first commit that stores an event sets a guard and sends one `drain_received_events`; commits while
the guard stands send nothing. The drain processes every event left `received` in id order, clears the
guard when it finds nothing left and reads once more; an event failing there is retried by
`process_webhook_event` as before.
"""

import json
import threading
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection, connections
from django.utils import timezone

from refunds.models import Refund
from tests.helpers import row_locked_elsewhere, run_in_threads, wait_for, wait_until_due
from tests.webhooks import payloads
from tests.webhooks.conftest import send
from tests.webhooks.factories import WebhookEventFactory
from webhooks.locks import WEBHOOK_DRAIN_GUARD_KEY
from webhooks.models import WebhookEvent
from webhooks.services import webhook_events_drain
from webhooks.tasks import drain_received_events, recover_missed_events

DRAIN = "webhooks.tasks.drain_received_events"
PROCESS = "webhooks.tasks.process_webhook_event"
UNHANDLED = "customer.created"  # a type the service does not handle: processing ignores it


def _unhandled_event() -> dict:
    return payloads.event(UNHANDLED, {"id": "cus_drain", "object": "customer"})


def _early_refund(payment) -> dict:
    """A refund reported for a payment we do not know as captured yet: applying it fails."""
    return payloads.event("refund.created", payloads.refund("re_early", intent=payment.gateway_reference, amount=1000))


def _row(event: dict) -> WebhookEvent:
    return WebhookEvent.objects.get(stripe_id=event["id"])


def _stored(django_capture_on_commit_callbacks, event: dict) -> None:
    """Deliver `event` and run what its commit runs (the drain trigger), as a request outside a test would."""
    with django_capture_on_commit_callbacks(execute=True):
        response = send(event)
    assert response.status_code == 200, response.content


def _retries_of_sent(queue: str) -> list[int]:
    """The `retries` header of each task message waiting in `queue`, oldest first."""
    from config.celery import app

    with app.connection_for_write() as connection:
        raw = connection.default_channel.client.lrange(queue, 0, -1)
    return [json.loads(item)["headers"]["retries"] for item in reversed(raw)]


@pytest.fixture
def drain_delay(settings) -> int:
    settings.WEBHOOKS_DRAIN_DELAY_MS = 20
    return 20


# --- the trigger -----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_many_stored_events_send_one_drain_while_its_guard_stands(
    broker_queue, drain_delay, django_capture_on_commit_callbacks
):
    # given five deliveries, each committed on its own
    events = [_unhandled_event() for _ in range(5)]

    # when they are stored
    for event in events:
        _stored(django_capture_on_commit_callbacks, event)

    # then one drain waits, a moment later, and the guard of the next commits stands; nothing is processed yet
    sent = broker_queue("webhooks")
    assert [task.name for task in sent] == [DRAIN]
    assert sent[0].eta is not None
    assert cache.get(WEBHOOK_DRAIN_GUARD_KEY) == 1
    assert sorted(WebhookEvent.objects.values_list("status", flat=True)) == ["received"] * 5


@pytest.mark.django_db
def test_without_a_delay_every_commit_sends_a_drain_at_once(broker_queue, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOKS_DRAIN_DELAY_MS = 0

    for _ in range(3):
        _stored(django_capture_on_commit_callbacks, _unhandled_event())

    assert [(task.name, task.eta) for task in broker_queue("webhooks")] == [(DRAIN, None)] * 3
    assert cache.get(WEBHOOK_DRAIN_GUARD_KEY) is None


@pytest.mark.django_db
def test_a_duplicate_delivery_sends_no_drain(broker_queue, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOKS_DRAIN_DELAY_MS = 0
    event = _unhandled_event()

    _stored(django_capture_on_commit_callbacks, event)
    _stored(django_capture_on_commit_callbacks, event)

    assert [task.name for task in broker_queue("webhooks")] == [DRAIN]
    assert WebhookEvent.objects.count() == 1


@pytest.mark.django_db
def test_with_the_cache_down_every_commit_still_sends_a_drain(
    broker_queue, drain_delay, settings, django_capture_on_commit_callbacks
):
    # given a cache nothing answers on (the guard cannot be read nor set)
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }

    # when two events are stored, the second once the first one's drain would have started
    for _ in range(2):
        _stored(django_capture_on_commit_callbacks, _unhandled_event())
        wait_until_due(broker_queue("webhooks")[-1].eta)

    # then each commit sent its drain, as if there were no guard, and a drain still processes them
    assert [task.name for task in broker_queue("webhooks")] == [DRAIN, DRAIN]
    assert drain_received_events() == 2
    assert sorted(WebhookEvent.objects.values_list("status", flat=True)) == ["ignored", "ignored"]


# --- the drain -------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_drain_processes_every_received_event_once_in_id_order(broker_queue, settings):
    # given seven events waiting (read two at a time), and one processed and one failed before
    settings.WEBHOOKS_DRAIN_BATCH_SIZE = 2
    waiting = [WebhookEventFactory(type=UNHANDLED) for _ in range(7)]
    done = WebhookEventFactory(type=UNHANDLED, processed=True)
    failed = WebhookEventFactory(type=UNHANDLED, failed=True)

    # when the drain runs, and again
    first = drain_received_events()
    second = drain_received_events()

    # then each waiting event was processed once, oldest id first; the others were left alone
    assert (first, second) == (7, 0)
    rows = list(WebhookEvent.objects.filter(pk__in=[row.pk for row in waiting]).order_by("pk"))
    assert [(row.status, row.ignored_reason, row.attempts) for row in rows] == [("ignored", "unknown_type", 1)] * 7
    assert [row.pk for row in sorted(rows, key=lambda row: (row.processed_at, row.pk))] == [row.pk for row in rows]
    done.refresh_from_db()
    failed.refresh_from_db()
    assert (done.status, done.attempts, failed.status, failed.attempts) == ("processed", 1, "failed", 1)
    assert broker_queue("webhooks") == []  # nothing failed, nothing left: no task sent


@pytest.mark.django_db(transaction=True)
def test_a_drain_passes_over_an_event_another_transaction_holds_and_applies_the_rest(broker_queue):
    # given three waiting events, the middle one locked by another transaction (a run applying it)
    first, held, last = (WebhookEventFactory(type=UNHANDLED) for _ in range(3))
    outcome: list[int] = []
    draining = threading.Thread(target=lambda: (outcome.append(drain_received_events()), connections.close_all()))
    with row_locked_elsewhere(held):
        # when the drain runs meanwhile
        draining.start()
        draining.join(10)
        waited = draining.is_alive()
    draining.join(10)

    # then it did not wait on that lock: the other two are applied, the held one is left to its holder
    assert not waited, "the drain waited for the event another transaction holds"
    assert outcome == [2]
    statuses = dict(WebhookEvent.objects.filter(pk__in=[first.pk, held.pk, last.pk]).values_list("pk", "status"))
    assert statuses == {first.pk: "ignored", held.pk: "received", last.pk: "ignored"}


@pytest.mark.django_db(transaction=True)
def test_drains_running_at_once_apply_each_event_exactly_once(broker_queue, settings):
    settings.WEBHOOKS_DRAIN_BATCH_SIZE = 10
    rows = [WebhookEventFactory(type=UNHANDLED) for _ in range(60)]

    results = run_in_threads([drain_received_events for _ in range(4)])

    assert all(isinstance(result, int) for result in results), results
    assert sum(results) >= 60  # a row found done by the other runs counts in each that read it
    stored = WebhookEvent.objects.filter(pk__in=[row.pk for row in rows])
    assert sorted(stored.values_list("status", "attempts")) == [("ignored", 1)] * 60


@pytest.mark.django_db
def test_a_drain_stops_at_its_limit_and_sends_itself_again(broker_queue, settings):
    settings.WEBHOOKS_DRAIN_BATCH_SIZE = 2
    settings.WEBHOOKS_DRAIN_MAX_PER_RUN = 3
    rows = [WebhookEventFactory(type=UNHANDLED) for _ in range(5)]

    first = drain_received_events()
    left = sorted(WebhookEvent.objects.filter(status="received").values_list("pk", flat=True))
    sent = [task.name for task in broker_queue("webhooks")]
    second = drain_received_events()

    assert (first, second) == (3, 2)
    assert left == [rows[3].pk, rows[4].pk]  # the oldest were taken first
    assert sent == [DRAIN]
    assert WebhookEvent.objects.filter(status="received").count() == 0


@pytest.mark.django_db
def test_the_guard_stands_while_the_drain_works_so_a_commit_meanwhile_is_drained_by_it_and_sends_nothing(
    broker_queue, drain_delay, django_capture_on_commit_callbacks
):
    # given one event stored: its drain is on its way and the guard stands
    first_event, later_event = _unhandled_event(), _unhandled_event()
    _stored(django_capture_on_commit_callbacks, first_event)
    assert [task.name for task in broker_queue("webhooks")] == [DRAIN]

    arrived = []

    def another_delivery_arrives_meanwhile(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        # the drain saving the first event's outcome: another delivery commits at that moment
        if sql.startswith('UPDATE "webhooks_webhookevent"') and not arrived:
            arrived.append(True)
            _stored(django_capture_on_commit_callbacks, later_event)
        return result

    # when the drain runs (its delay over) and another event commits while it processes the first
    wait_until_due(broker_queue("webhooks")[0].eta)
    with connection.execute_wrapper(another_delivery_arrives_meanwhile):
        drained = drain_received_events()

    assert arrived
    # then that commit found the guard and sent nothing: the running drain applied both, then cleared it
    assert drained == 2
    assert [task.name for task in broker_queue("webhooks")] == [DRAIN]  # only the first, already run here
    assert cache.get(WEBHOOK_DRAIN_GUARD_KEY) is None
    assert (_row(first_event).status, _row(later_event).status) == ("ignored", "ignored")


@pytest.mark.django_db
def test_a_row_committed_behind_the_drain_before_it_clears_the_guard_is_read_by_its_last_pass(
    broker_queue, drain_delay, django_capture_on_commit_callbacks
):
    # given a waiting event, and one whose id was taken earlier but whose commit comes as the drain finds nothing
    early = WebhookEventFactory(type=UNHANDLED)
    _stored(django_capture_on_commit_callbacks, _unhandled_event())  # sets the guard, sends the drain
    WebhookEvent.objects.filter(pk=early.pk).update(status="ignored")  # not yet visible as waiting...
    cleared = []

    def guard_cleared() -> None:
        # ... until just before the drain clears the guard: its commit, behind the last id read, sent nothing
        WebhookEvent.objects.filter(pk=early.pk).update(status="received")
        assert cache.get(WEBHOOK_DRAIN_GUARD_KEY) == 1
        cache.delete(WEBHOOK_DRAIN_GUARD_KEY)
        cleared.append(True)

    # when the drain runs
    result = webhook_events_drain(on_failure=lambda pk: None, batch_size=10, limit=100, on_empty=guard_cleared)

    # then its last pass, from the first id, applied that row too; the guard is down
    assert cleared == [True]
    assert (result.processed, result.more) == (2, False)
    assert WebhookEvent.objects.get(pk=early.pk).attempts == 1
    assert not WebhookEvent.objects.filter(status="received").exists()
    assert cache.get(WEBHOOK_DRAIN_GUARD_KEY) is None


@pytest.mark.django_db
def test_a_drain_that_fails_clears_its_guard_so_the_next_commit_sends_a_drain(
    broker_queue, drain_delay, django_capture_on_commit_callbacks
):
    from django.db import ProgrammingError, connection, transaction

    _stored(django_capture_on_commit_callbacks, _unhandled_event())
    assert cache.get(WEBHOOK_DRAIN_GUARD_KEY) == 1
    wait_until_due(broker_queue("webhooks")[0].eta)  # the drain runs when it is due, as a worker runs it

    def drain_with_its_table_gone() -> None:
        # PostgreSQL fails the drain's first read; rolling back the savepoint puts the table back
        table = connection.ops.quote_name(WebhookEvent._meta.db_table)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} RENAME TO webhooks_gone")
            drain_received_events()

    with pytest.raises(ProgrammingError):
        drain_with_its_table_gone()

    assert cache.get(WEBHOOK_DRAIN_GUARD_KEY) is None
    _stored(django_capture_on_commit_callbacks, _unhandled_event())
    assert [task.name for task in broker_queue("webhooks")] == [DRAIN, DRAIN]


# --- failures --------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_an_event_failing_in_the_drain_is_handed_to_its_own_task_as_its_first_retry(broker_queue, payment_in, settings):
    # given a failing event stored before one that applies
    settings.WEBHOOKS_PROCESS_MAX_RETRIES = 2
    payment = payment_in("requires_capture", amount=10_000)
    failing = WebhookEventFactory(type="refund.created", body=json.dumps(_early_refund(payment)))
    fine = WebhookEventFactory(type=UNHANDLED)

    # when the drain runs
    processed = drain_received_events()

    # then the failure is kept, the next event still processed, and the failing one waits for its retry
    failing.refresh_from_db()
    fine.refresh_from_db()
    assert processed == 1
    assert (failing.status, failing.attempts) == ("failed", 1)
    assert "InvalidTransition" in failing.last_error
    assert (fine.status, fine.attempts) == ("ignored", 1)
    sent = broker_queue("webhooks")
    assert [(task.name, task.kwargs) for task in sent] == [(PROCESS, {"webhook_event_id": failing.pk})]
    assert sent[0].eta is not None  # after the backoff
    assert _retries_of_sent("webhooks") == [1]  # the drain's attempt was its first run
    assert Refund.objects.count() == 0


@pytest.mark.django_db
def test_with_no_retries_an_event_failing_in_the_drain_is_left_failed(broker_queue, payment_in, settings):
    settings.WEBHOOKS_PROCESS_MAX_RETRIES = 0
    payment = payment_in("requires_capture", amount=10_000)
    failing = WebhookEventFactory(type="refund.created", body=json.dumps(_early_refund(payment)))

    drain_received_events()

    failing.refresh_from_db()
    assert (failing.status, failing.attempts) == ("failed", 1)
    assert broker_queue("webhooks") == []


@pytest.mark.django_db
def test_inline_an_event_failing_in_the_drain_is_left_failed_and_the_next_one_processed(
    payment_in, tasks_inline, settings
):
    # given no broker (tasks run inline, as under `make run`): nothing to retry with
    settings.WEBHOOKS_PROCESS_MAX_RETRIES = 2
    payment = payment_in("requires_capture", amount=10_000)
    failing = WebhookEventFactory(type="refund.created", body=json.dumps(_early_refund(payment)))
    fine = WebhookEventFactory(type=UNHANDLED)

    drain_received_events.delay()

    failing.refresh_from_db()
    fine.refresh_from_db()
    assert (failing.status, failing.attempts) == ("failed", 1)
    assert "InvalidTransition" in failing.last_error
    assert (fine.status, fine.attempts) == ("ignored", 1)
    assert payment.refunds.count() == 0


# --- the safety net --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_recovery_sends_a_drain_for_a_stranded_event_even_while_a_guard_stands(broker_queue, settings):
    # given an event left received for ten minutes, and a guard left by a drain the broker lost
    settings.STRIPE_SECRET_KEY = ""
    cache.set(WEBHOOK_DRAIN_GUARD_KEY, 1, 5)
    WebhookEventFactory(type=UNHANDLED, received_at=timezone.now() - timedelta(minutes=10))

    recover_missed_events()

    assert [task.name for task in broker_queue("webhooks")] == [DRAIN]


# --- end to end ------------------------------------------------------------------------------------
N_END_TO_END = 30


@pytest.mark.django_db(transaction=True)
def test_webhooks_posted_with_a_worker_running_are_all_processed_with_at_most_one_task_waiting(
    payment_in, worker, drain_delay
):
    # given payments waiting for their capture, and a real worker on the broker
    from config.celery import app

    payments = [payment_in("requires_capture", amount=1000 + index) for index in range(N_END_TO_END)]
    events = [
        payloads.event(
            "payment_intent.succeeded",
            payloads.payment_intent(
                payment.gateway_reference,
                status="succeeded",
                amount=payment.amount,
                capture_method="manual",
                amount_received=payment.amount,
            ),
        )
        for payment in payments
    ]

    def waiting() -> int:
        with app.connection_for_write() as connection:
            return connection.default_channel.client.llen("webhooks")

    # when Stripe posts every event through the endpoint
    most_waiting = 0
    for event in events:
        assert send(event).status_code == 200
        most_waiting = max(most_waiting, waiting())

    # then every event is processed once, and the webhooks queue never held more than one task
    wait_for(lambda: not WebhookEvent.objects.filter(status="received").exists(), timeout=60)
    rows = WebhookEvent.objects.filter(stripe_id__in=[event["id"] for event in events])
    assert sorted(rows.values_list("status", "attempts")) == [("processed", 1)] * N_END_TO_END
    assert most_waiting <= 1
    assert waiting() <= 1
    for payment in payments:
        payment.refresh_from_db()
        assert (payment.status, payment.amount_received) == ("succeeded", payment.amount)
