"""Concurrent attaches of one token on PostgreSQL with real threads: one saved method, one event."""

import pytest

from customers.models import Customer, PaymentMethod
from events.models import Event
from tests.conftest import client_for
from tests.customers.conftest import attach, put_customer
from tests.helpers import run_in_threads


@pytest.fixture(autouse=True)
def _simulator(settings):
    settings.PAYMENTS_GATEWAY = "simulator"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("same_key", [True, False], ids=["same-key", "different-keys"])
def test_twenty_concurrent_attaches_of_one_token_save_one_method(make_client, same_key):
    shop = make_client(f"shop-attach-race-{same_key}")
    clients = [client_for(shop.user) for _ in range(20)]

    responses = run_in_threads(
        [
            lambda c=c, i=i: attach(c, "cus_race", "pm_card_visa", key="race" if same_key else f"race-{i}")
            for i, c in enumerate(clients)
        ]
    )

    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= ({201, 409} if same_key else {201}), [r.json() for r in responses]
    methods = PaymentMethod.objects.filter(customer__client=shop.user)
    assert methods.count() == 1
    saved = methods.get()
    assert {r.json()["id"] for r in responses if r.status_code == 201} == {saved.public_id}
    for conflict in (r for r in responses if r.status_code == 409):
        assert conflict.json()["error"]["code"] == "idempotency_key_in_use"
    assert Customer.objects.filter(client=shop.user).count() == 1
    assert Event.objects.filter(subject_id=saved.public_id, type="payment_method.attached").count() == 1
    assert Event.objects.filter(client=shop.user, type="customer.created").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_puts_make_one_customer_and_one_gateway_customer(make_client):
    shop = make_client("shop-put-race")
    clients = [client_for(shop.user) for _ in range(10)]

    responses = run_in_threads([lambda c=c: put_customer(c, "cus_put_race", name="Ada") for c in clients])

    assert sorted(r.status_code for r in responses).count(201) == 1, [r.json() for r in responses]
    assert {r.status_code for r in responses} <= {200, 201}
    assert len({r.json()["gateway_reference"] for r in responses}) == 1
    assert Customer.objects.filter(client=shop.user).count() == 1
