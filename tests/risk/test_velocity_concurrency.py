"""Concurrent creates on PostgreSQL with real threads: the identity locks keep the velocity counts exact.

Without the advisory locks every thread counts the others' rows before they commit, so more than the
limit get through; with them each creation counts every one committed before it.
"""

import threading

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from payments.models import IdempotencyKey, Payment
from risk.locks import identity_lock_keys
from risk.models import RiskAssessment
from tests.conftest import client_for
from tests.helpers import run_in_threads, wait_for
from tests.risk.conftest import BASE_BODY, post_payment

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 20
LIMIT = 5


def _create_concurrently(user, bodies):
    clients = [client_for(user) for _ in bodies]
    responses = run_in_threads(
        [
            lambda c=c, b=b, i=i: post_payment(c, key=f"concurrent-{i}", **b)
            for i, (c, b) in enumerate(zip(clients, bodies, strict=True))
        ]
    )
    assert [getattr(r, "status_code", r) for r in responses] == [201] * len(bodies)
    return responses


def _assessments_in_creation_order():
    return list(RiskAssessment.objects.order_by("payment__created_at", "payment__id"))


def test_twenty_concurrent_creates_for_one_customer_allow_exactly_the_first_five(storefront, rules):
    rules(short_window_payments=LIMIT)

    _create_concurrently(storefront.user, [{"customer_id": "cus_rush"}] * THREADS)

    assessments = _assessments_in_creation_order()
    assert [a.decision for a in assessments] == ["allow"] * LIMIT + ["review"] * (THREADS - LIMIT)
    assert all(a.reasons == [] for a in assessments[:LIMIT])
    # each held payment counted exactly the payments created before it
    assert [a.reasons[0]["message"] for a in assessments[LIMIT:]] == [
        f"{earlier} payments by this customer in 10 min (limit {LIMIT})" for earlier in range(LIMIT, THREADS)
    ]
    assert Payment.objects.filter(customer_id="cus_rush", capture_method="manual").count() == THREADS - LIMIT


@pytest.mark.parametrize(
    ("shared", "code", "noun"),
    [
        ({"customer_email": "Rush@Example.com"}, "velocity_email_short", "email"),
        ({"customer_ip": "203.0.113.50"}, "velocity_ip_short", "ip"),
    ],
    ids=["email", "ip"],
)
def test_concurrent_creates_by_different_customers_sharing_an_identity_are_counted_exactly(
    storefront, rules, shared, code, noun
):
    rules(short_window_payments=LIMIT)
    bodies = [{"customer_id": f"cus_{index}", **shared} for index in range(THREADS)]

    _create_concurrently(storefront.user, bodies)

    assessments = _assessments_in_creation_order()
    assert [a.decision for a in assessments] == ["allow"] * LIMIT + ["review"] * (THREADS - LIMIT)
    assert {tuple(a.reason_codes) for a in assessments[LIMIT:]} == {(code,)}
    assert [a.reasons[0]["message"] for a in assessments[LIMIT:]] == [
        f"{earlier} payments by this {noun} in 10 min (limit {LIMIT})" for earlier in range(LIMIT, THREADS)
    ]


def test_a_create_waiting_on_its_key_held_by_another_request_holds_no_identity_lock(storefront):
    """The identity locks go in the key's INSERT statement, taken after the INSERT: a create that waits for another
    request with its key (its INSERT blocks on the unique key) holds none of them meanwhile, so creations for
    the same customer go on (and the two requests cannot deadlock, each waiting for the other's lock)."""
    inserted, release = threading.Event(), threading.Event()

    def other_request_with_the_key() -> None:  # claimed, uncommitted, then rolled back (it failed)
        try:
            with transaction.atomic():
                now = timezone.now()
                IdempotencyKey.objects.create(
                    client=storefront.user, key="k-wait", fingerprint="f", lock_token="t", locked_at=now, created_at=now
                )
                inserted.set()
                release.wait(30)
                transaction.set_rollback(True)
        finally:
            connections.close_all()

    holder = threading.Thread(target=other_request_with_the_key)
    holder.start()
    assert inserted.wait(10)
    waiter = threading.Thread(target=lambda: results.append(post_payment(client_for(storefront.user), key="k-wait")))
    results: list = []
    try:
        waiter.start()
        wait_for(lambda: _waiting_on_a_lock("WITH k AS (INSERT INTO"))
        keys = identity_lock_keys(client=storefront.user, customer_id=BASE_BODY["customer_id"], email="", ip=None)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT bool_and(pg_try_advisory_xact_lock(key)) FROM unnest(%s::bigint[]) AS key", [list(keys)]
            )
            assert cursor.fetchone()[0] is True  # none of the waiting create's locks is held
    finally:
        release.set()
        holder.join(10)
        waiter.join(30)
        connections.close_all()

    assert [response.status_code for response in results] == [201]
    assert Payment.objects.filter(client=storefront.user).count() == 1


def _waiting_on_a_lock(statement_start: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
            [statement_start + "%"],
        )
        return cursor.fetchone()[0] == 1
