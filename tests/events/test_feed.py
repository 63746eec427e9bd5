"""The event feed never skips an event, even one whose transaction commits after a later-numbered one."""

import threading

import pytest
from django.db import connections, transaction

from events.models import Event
from events.services import event_record
from tests.helpers import run_in_threads


def _record(client, data):
    return event_record(
        type="payment.initiated", client_id=client.user.pk, subject_type="payment", subject_id="pay_x", data=data
    )


def _feed(client, after=None):
    params = {"after": after} if after else {}
    return [event["id"] for event in client.get("/api/v1/events/", params).json()["results"]]


@pytest.mark.django_db(transaction=True)
def test_an_event_committed_late_is_never_skipped_by_a_consumer_using_after(finance):
    written = threading.Event()
    release = threading.Event()
    early_ids: list[str] = []

    def slow_transaction() -> None:
        with transaction.atomic():
            early_ids.append(_record(finance, data={"n": 1}).public_id)
            written.set()
            assert release.wait(20)

    thread = threading.Thread(target=lambda: (slow_transaction(), connections.close_all()))
    thread.start()
    assert written.wait(20)
    late = _record(finance, data={"n": 2})  # commits first

    seen_while_open = _feed(finance)
    release.set()
    thread.join(20)
    early = Event.objects.get(public_id=early_ids[0])
    seen_after = _feed(finance, after=seen_while_open[-1] if seen_while_open else None)

    assert early.sequence < late.sequence  # numbered first, committed last
    assert late.public_id not in seen_while_open
    assert seen_while_open == []
    assert seen_after == [early.public_id, late.public_id]


@pytest.mark.django_db(transaction=True)
def test_consumer_following_the_feed_under_concurrent_writers_sees_every_event_once(finance):
    def writer(n: int):
        def write() -> list[str]:
            ids = []
            for i in range(10):
                with transaction.atomic():
                    ids.append(_record(finance, data={"w": n, "i": i}).public_id)
            return ids

        return write

    seen: list[str] = []
    after = None
    results = run_in_threads([writer(n) for n in range(4)])
    while True:
        page = _feed(finance, after)
        if not page:
            break
        seen.extend(page)
        after = page[-1]

    written = {event_id for ids in results for event_id in ids}
    assert len(written) == 40
    assert sorted(seen) == sorted(written)
    assert len(seen) == len(set(seen))


@pytest.mark.django_db
def test_feed_filters_by_type_and_payment(storefront, create_payment):
    first = create_payment(payment_method="pm_card_visa", confirm=True).json()
    second = create_payment().json()

    by_type = storefront.get("/api/v1/events/", {"type": "payment.captured"}).json()["results"]
    by_payment = storefront.get("/api/v1/events/", {"payment": second["id"]}).json()["results"]
    unknown_after = storefront.get("/api/v1/events/", {"after": "evt_nope"})

    assert [e["payment"] for e in by_type] == [first["id"]]
    assert [e["type"] for e in by_payment] == ["payment.initiated"]
    assert unknown_after.status_code == 400
    assert (unknown_after.json()["error"]["param"], unknown_after.json()["error"]["code"]) == (
        "after",
        "resource_missing",
    )


@pytest.mark.django_db
def test_feed_pages_with_next(storefront, create_payment):
    for _ in range(3):
        create_payment()

    page = storefront.get("/api/v1/events/", {"page_size": 2}).json()
    rest = storefront.get(page["next"]).json()

    assert len(page["results"]) == 2
    assert len(rest["results"]) == 1
    assert rest["next"] is None
    sequences = [e["sequence"] for e in page["results"] + rest["results"]]
    assert sequences == sorted(sequences)
