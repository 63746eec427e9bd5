"""The lists cost the same few queries whatever their length."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.django_db


def _queries(client, path: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200
    return len(captured.captured_queries)


def test_subscription_and_invoice_lists_are_constant(storefront, subscribe):
    for index in range(2):
        assert subscribe(customer_id=f"cus_{index}").status_code == 201
    few = (_queries(storefront, "/api/v1/subscriptions/"), _queries(storefront, "/api/v1/invoices/"))
    for index in range(2, 8):
        subscribe(customer_id=f"cus_{index}", quantity=index)
    many = (_queries(storefront, "/api/v1/subscriptions/"), _queries(storefront, "/api/v1/invoices/"))
    assert few == many
    assert many[0] <= 4, many
    assert many[1] <= 5, many
    assert len(storefront.get("/api/v1/invoices/").json()["results"]) == 8
