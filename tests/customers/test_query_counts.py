"""The customer's reads cost a fixed number of queries, whatever the number of saved methods."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import Customer, PaymentMethod
from tests.customers.conftest import list_methods, put_customer

pytestmark = pytest.mark.django_db


def _add_methods(customer: Customer, count: int) -> None:
    PaymentMethod.objects.bulk_create(
        PaymentMethod(
            customer=customer,
            gateway="simulator",
            gateway_reference=f"pm_sim_bulk_{customer.pk}_{n}",
            brand="visa",
            last4="4242",
            exp_month=12,
            exp_year=2034,
        )
        for n in range(count)
    )


def _queries(request) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = request()
    assert response.status_code == 200, response.json()
    return len(queries)


@pytest.mark.parametrize("path", ["/api/v1/customers/{}/", "/api/v1/customers/{}/payment_methods/"])
def test_reads_cost_the_same_at_1_and_50_methods(storefront, path):
    counts = {}
    for rows in (1, 50):
        customer_id = f"cus_rows_{rows}"
        put_customer(storefront, customer_id)
        _add_methods(Customer.objects.get(customer_id=customer_id), rows)
        counts[rows] = _queries(lambda customer_id=customer_id: storefront.get(path.format(customer_id)))
    assert counts[1] == counts[50], counts
    assert counts[50] <= 4  # the client, the customer (with its default and gateway id), the methods


def test_the_list_holds_all_50(storefront):
    put_customer(storefront)
    _add_methods(Customer.objects.get(customer_id="cus_42"), 50)

    assert len(list_methods(storefront).json()["results"]) == 50
