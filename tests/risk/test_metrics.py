"""/metrics counts risk decisions per rule and reviews closed per outcome (read before and after: counters only grow).

Decisions are counted when the creating transaction commits, hence `django_capture_on_commit_callbacks`.
"""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from payments.models import Payment
from risk.services import review_approve, review_reject
from tests.risk.conftest import HELD

pytestmark = pytest.mark.django_db

DECLINED = {"payment_method": "pm_card_chargeDeclined", "confirm": True}


def scrape() -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics, keyed by (name, labels)."""
    response = Client().get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def increase(before, after, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_a_velocity_review_counts_for_the_velocity_rule(create, django_capture_on_commit_callbacks):
    for _ in range(5):
        create()
    before = scrape()

    with django_capture_on_commit_callbacks(execute=True):
        response = create()

    after = scrape()
    assert response.json()["review"]["reasons"] == ["velocity_customer_short"]
    assert increase(before, after, "risk_rule_decisions_total", rule="velocity", decision="review") == 1
    assert increase(before, after, "risk_decisions_total", decision="review") == 1
    assert increase(before, after, "risk_decisions_total", decision="allow") == 0


def test_an_allowed_payment_counts_under_rule_none(create, django_capture_on_commit_callbacks):
    before = scrape()

    with django_capture_on_commit_callbacks(execute=True):
        create()
        create(customer_id="cus_2")

    after = scrape()
    assert increase(before, after, "risk_rule_decisions_total", rule="none", decision="allow") == 2
    assert increase(before, after, "risk_decisions_total", decision="allow") == 2


def test_a_block_counts_once_for_each_rule_that_fired(create_at, django_capture_on_commit_callbacks):
    start = timezone.now()
    for _ in range(2):
        create_at(start)
    for _ in range(3):
        create_at(start, **DECLINED)
    before = scrape()

    with django_capture_on_commit_callbacks(execute=True):
        response = create_at(start + timedelta(minutes=1))

    after = scrape()
    assert response.status_code == 402
    assert increase(before, after, "risk_rule_decisions_total", rule="velocity", decision="block") == 1
    assert increase(before, after, "risk_rule_decisions_total", rule="declines", decision="block") == 1
    assert increase(before, after, "risk_decisions_total", decision="block") == 1


def test_a_blocklist_block_counts_for_the_blocklist_rule(create, block, django_capture_on_commit_callbacks):
    block("email_domain", "example.com")
    before = scrape()

    with django_capture_on_commit_callbacks(execute=True):
        response = create(customer_email="ann@example.com", customer_ip="203.0.113.1")

    after = scrape()
    assert response.status_code == 402
    assert increase(before, after, "risk_rule_decisions_total", rule="blocklist", decision="block") == 1
    assert increase(before, after, "risk_decisions_total", decision="block") == 1


def test_a_replayed_create_is_not_counted_again(create, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        create(key="metrics-once", **HELD)
    before = scrape()

    with django_capture_on_commit_callbacks(execute=True):
        again = create(key="metrics-once", **HELD)

    after = scrape()
    assert again["Idempotent-Replayed"] == "true"
    assert increase(before, after, "risk_decisions_total", decision="review") == 0
    assert increase(before, after, "risk_rule_decisions_total", rule="first_seen", decision="review") == 0


@pytest.mark.parametrize(
    ("decide", "outcome"), [(review_approve, "approved"), (review_reject, "rejected")], ids=["approve", "reject"]
)
def test_review_decisions_count_by_outcome(create, reviewer, decide, outcome, django_capture_on_commit_callbacks):
    created = create(**HELD, payment_method="pm_card_visa", confirm=True).json()
    before = scrape()

    with django_capture_on_commit_callbacks(execute=True):
        decide(payment_id=Payment.objects.get(public_id=created["id"]).pk, actor=reviewer, reason="decided")

    after = scrape()
    assert increase(before, after, "risk_reviews_closed_total", outcome=outcome) == 1
    other = {"approved": "rejected", "rejected": "approved"}[outcome]
    assert increase(before, after, "risk_reviews_closed_total", outcome=other) == 0


def test_a_held_payment_canceled_by_the_shop_counts_as_closed_by_payment(
    create, storefront, django_capture_on_commit_callbacks
):
    created = create(**HELD, payment_method="pm_card_visa", confirm=True).json()
    before = scrape()

    with django_capture_on_commit_callbacks(execute=True):
        storefront.post(f"/api/v1/payments/{created['id']}/cancel/", {}, format="json")

    after = scrape()
    assert increase(before, after, "risk_reviews_closed_total", outcome="closed_by_payment") == 1
