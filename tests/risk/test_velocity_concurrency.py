"""Concurrent creates on PostgreSQL with real threads: the identity locks keep the velocity counts exact.

Without the advisory locks every thread counts the others' rows before they commit, so more than the
limit get through; with them each creation counts every one committed before it.
"""

import pytest

from payments.models import Payment
from risk.models import RiskAssessment
from tests.conftest import client_for
from tests.helpers import run_in_threads
from tests.risk.conftest import post_payment

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
