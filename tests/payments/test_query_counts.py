"""Queries per request stay within fixed budgets, whatever the number of rows.

Budgets count SQL statements, not the SAVEPOINT/RELEASE pairs that the test's own wrapping
transaction adds around each `atomic()` (in production those are BEGIN/COMMIT). Stated here and in
the README:
- create with confirm: 5 in 2 commits and one gateway call (create with `confirm=true`), in a warm
  process. Before the transaction: the client 1 (the risk rules' settings as the process read them
  last: none). The create's transaction: the idempotency key's INSERT with the risk rules' identity
  locks and the payment's id drawn 1, the blocklist with the velocity counts and the settings as stored
  now 1, then the payment with its audit row, the assessment, history and event together 1
  (`config.rows.batched`).
  The answer's transaction: one statement, the conditional UPDATE (no re-read: `payments.saving`;
  `RETURNING` tells it matched) with its audit row, history, event and the key's stored response 1;
- retrieve: 2 (the client, the payment);
- list: 2 (the client, one page), the same for 10 and 100 rows;
- event feed: 2 (the client, one page with its payments joined), the same for 10 and 100 events.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from payments import services

pytestmark = pytest.mark.django_db

# 5 (see above); issue 14 asks at most 14.
CREATE_BUDGET = 5
RETRIEVE_BUDGET = 2
LIST_BUDGET = 2
FEED_BUDGET = 2


def _seed(client_user: User, count: int) -> None:
    for _ in range(count):
        services.payment_create(client=client_user, amount=1000, currency="usd", customer_id="cus_seed")


def _count(call) -> int:
    """Statements run by one request, savepoints of the test transaction left out."""
    with CaptureQueriesContext(connection) as queries:
        response = call()
    assert response.status_code in {200, 201}
    return sum(1 for query in queries if not query["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT")))


def test_create_with_confirm_stays_within_budget(storefront):
    body = {"amount": 2000, "currency": "usd", "customer_id": "c", "payment_method": "pm_card_visa", "confirm": True}
    storefront.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY="warm")  # auditlog's content type

    statements = _count(
        lambda: storefront.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY="budget")
    )

    assert statements <= CREATE_BUDGET


def test_retrieve_stays_within_budget(storefront):
    payment = services.payment_create(client=storefront.user, amount=1000, currency="usd", customer_id="c")

    statements = _count(lambda: storefront.get(f"/api/v1/payments/{payment.public_id}/"))

    assert statements <= RETRIEVE_BUDGET


def test_list_costs_the_same_for_10_and_100_rows(storefront):
    _seed(storefront.user, 10)
    small = _count(lambda: storefront.get("/api/v1/payments/?page_size=100"))
    _seed(storefront.user, 90)
    large = _count(lambda: storefront.get("/api/v1/payments/?page_size=100"))

    assert small == large
    assert large <= LIST_BUDGET


def test_event_feed_costs_the_same_for_10_and_100_events(finance, make_client):
    shop = make_client("shop-feed")
    _seed(shop.user, 10)
    small = _count(lambda: finance.get("/api/v1/events/?page_size=100"))
    _seed(shop.user, 90)
    large = _count(lambda: finance.get("/api/v1/events/?page_size=100"))

    assert small == large
    assert large <= FEED_BUDGET


def test_create_with_confirm_commits_twice(storefront):
    """The key, the payment, its risk verdict, history and event commit together; the answer and the response too."""
    body = {"amount": 2000, "currency": "usd", "customer_id": "c", "payment_method": "pm_card_visa", "confirm": True}
    commits: list[int] = []
    services.payment_create(client=storefront.user, amount=1000, currency="usd", customer_id="warm")
    with CaptureQueriesContext(connection) as queries:
        response = storefront.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY="commits")
    assert response.status_code == 201
    depth = 0
    for query in queries:  # the test's own transaction turns each outermost atomic() into a SAVEPOINT
        sql = query["sql"]
        if sql.startswith("SAVEPOINT"):
            depth += 1
        elif sql.startswith("RELEASE SAVEPOINT"):
            depth -= 1
            if depth == 0:
                commits.append(1)
        elif depth == 0 and sql.startswith(("INSERT", "UPDATE", "DELETE", "WITH")):
            commits.append(1)  # a write outside atomic() commits on its own (autocommit)
    assert len(commits) == 2
