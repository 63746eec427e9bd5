"""The event feed, served from rows, answers byte for byte what `render_event` makes of the stored events,
in one statement after the client's whatever the page size or `after=`."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.renderers import JSONRenderer

from events.models import Event
from events.rendering import render_event
from tests.events.factories import EventFactory
from tests.payments.factories import PaymentFactory

pytestmark = pytest.mark.django_db


def _statements(call) -> tuple[object, int]:
    with CaptureQueriesContext(connection) as queries:
        response = call()
    return response, sum(1 for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT")))


def _expected(events: list[Event], next_url: str | None) -> bytes:
    return JSONRenderer().render(
        {"next": next_url, "previous": None, "results": [render_event(Event.objects.get(pk=e.pk)) for e in events]}
    )


def test_feed_pages_render_exactly_as_render_event(storefront, make_client):
    payment = PaymentFactory(client=storefront.user)
    events = [
        EventFactory(payment=payment, data={"id": payment.public_id, "amount": 2000, "ratio": 1.5, "none": None}),
        EventFactory(
            payment=payment,
            type="payment.captured",
            data={"text": "Café “quoted”\u2028\n\t\\", "nested": {"b": [1, {"c": True}], "a": []}, "empty": {}},
        ),
        EventFactory(client=storefront.user, subject_type="refund", subject_id="re_1", data={}),
        EventFactory(payment=payment, data=[1, "two"]),
    ]
    EventFactory(payment=PaymentFactory(client=make_client("other-shop").user))  # not this client's
    Event.objects.filter(pk=events[0].pk).update(created_at=datetime(2026, 11, 22, 10, 0, tzinfo=UTC))

    first = storefront.get("/api/v1/events/", {"page_size": 3})
    rest = storefront.get(first.json()["next"])
    everything = storefront.get("/api/v1/events/", {"page_size": 100})

    assert first.content == _expected(events[:3], first.json()["next"])
    assert first.json()["next"].endswith(f"?page_size=3&after={events[2].public_id}")
    assert rest.content == _expected(events[3:], None)
    assert everything.content == _expected(events, None)
    assert first.json()["results"][0]["created"] == "2026-11-22T10:00:00Z"
    assert first.json()["results"][2]["payment"] is None


def test_a_payments_own_feed_and_the_filters_render_the_same_rows(storefront):
    payment, other = PaymentFactory(client=storefront.user), PaymentFactory(client=storefront.user)
    mine = [EventFactory(payment=payment), EventFactory(payment=payment, type="payment.captured")]
    EventFactory(payment=other, type="payment.captured")

    own = storefront.get(f"/api/v1/payments/{payment.public_id}/events/")
    by_payment = storefront.get("/api/v1/events/", {"payment": payment.public_id, "type": "payment.captured"})

    assert own.content == _expected(mine, None)
    assert by_payment.content == _expected(mine[1:], None)


def test_after_the_last_event_is_an_empty_page_and_after_an_unknown_one_a_400(storefront, make_client):
    last = EventFactory(payment=PaymentFactory(client=storefront.user))
    theirs = EventFactory(payment=PaymentFactory(client=make_client("other-shop").user))

    empty = storefront.get("/api/v1/events/", {"after": last.public_id})
    foreign = storefront.get("/api/v1/events/", {"after": theirs.public_id})

    assert (empty.status_code, empty.json()["results"], empty.json()["next"]) == (200, [], None)
    assert foreign.status_code == 400
    assert (foreign.json()["error"]["param"], foreign.json()["error"]["code"]) == ("after", "resource_missing")


@pytest.mark.parametrize("count", [1, 100])
def test_a_feed_page_costs_two_statements_with_or_without_after(finance, count):
    events = EventFactory.create_batch(count + 1)

    page, from_start = _statements(lambda: finance.get("/api/v1/events/", {"page_size": 100}))
    resumed, after = _statements(
        lambda: finance.get("/api/v1/events/", {"page_size": 100, "after": events[0].public_id})
    )

    assert (len(page.json()["results"]), len(resumed.json()["results"])) == (min(count + 1, 100), count)
    assert (from_start, after) == (2, 2)  # the JWT client, then the page
