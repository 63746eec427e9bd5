"""The customer back office: a changelist of constant cost, exact searches, the page, and staff's audited detach."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.models import StaffAction
from customers.models import Customer, CustomerGatewayToken, PaymentMethod
from events.models import Event
from gateways.simulator import SimulatorGateway
from tests.accounts.factories import StaffUserFactory
from tests.customers.conftest import create_customer_staff_groups, put_customer

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/customers/customer/"


@pytest.fixture
def agent() -> Client:
    create_customer_staff_groups()
    client = Client()
    client.force_login(StaffUserFactory(username="agent", groups=["finance_agent"]))
    return client


@pytest.fixture
def auditor() -> Client:
    create_customer_staff_groups()
    client = Client()
    client.force_login(StaffUserFactory(username="auditor-1", groups=["auditor"]))
    return client


def _bulk_customers(shop, count: int, start: int = 0) -> None:
    Customer.objects.bulk_create(
        Customer(client=shop, customer_id=f"cus_bulk_{n}", email=f"c{n}@example.com")
        for n in range(start, start + count)
    )


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def test_the_changelist_costs_the_same_at_1_and_50_customers_and_never_counts_the_table(agent, shop):
    _bulk_customers(shop, 1)
    with CaptureQueriesContext(connection) as one:
        assert agent.get(CHANGELIST).status_code == 200
    _bulk_customers(shop, 49, start=1)
    with CaptureQueriesContext(connection) as fifty:
        response = agent.get(CHANGELIST)

    assert response.status_code == 200
    assert "cus_bulk_49" in response.content.decode()
    assert len(one) == len(fifty), [q["sql"] for q in fifty]
    counts = [q["sql"] for q in fifty if "COUNT(" in q["sql"].upper()]
    assert all("LIMIT" in sql.upper() for sql in counts), counts  # capped counts only, never a full COUNT(*)


@pytest.mark.parametrize("field", ["customer_id", "email", "public_id", "gateway"])
def test_search_finds_one_customer_exactly(agent, storefront, field):
    put_customer(storefront, "cus_find", email="Find.Me@example.com")
    put_customer(storefront, "cus_other", email="other@example.com")
    customer = Customer.objects.get(customer_id="cus_find")
    term = {
        "customer_id": "cus_find",
        "email": "Find.Me@example.com",
        "public_id": customer.public_id,
        "gateway": CustomerGatewayToken.objects.get(customer=customer).reference,
    }[field]

    page = agent.get(CHANGELIST, {"q": term}).content.decode()

    assert customer.public_id in page
    assert Customer.objects.get(customer_id="cus_other").public_id not in page


def test_the_customer_page_shows_safe_card_details_payments_and_refunds(agent, storefront, saved_card):
    method = saved_card(set_default=True)
    payment = storefront.post(
        "/api/v1/payments/",
        {"amount": 2500, "currency": "usd", "customer_id": "cus_42", "payment_method": "pm_card_visa", "confirm": True},
        format="json",
        HTTP_IDEMPOTENCY_KEY="admin-page-pay",
    ).json()
    refund = storefront.post(
        f"/api/v1/payments/{payment['id']}/refunds/", {"amount": 500}, format="json", HTTP_IDEMPOTENCY_KEY="admin-re"
    ).json()
    customer = Customer.objects.get(customer_id="cus_42")

    page = agent.get(f"{CHANGELIST}{customer.pk}/change/").content.decode()

    assert "visa •••• 4242" in page
    assert f"{method['card']['exp_month']:02d}/{method['card']['exp_year']}" in page
    assert payment["id"] in page
    assert "$25.00" in page
    assert f'<td class="field-risk">{payment["risk"]["score"]} ({payment["risk"]["level"]})</td>' in page
    assert refund["id"] in page
    assert method["card"]["fingerprint"] not in page
    assert "Detach" in page


def test_staff_detach_needs_a_reason_and_is_audited(agent, storefront, saved_card):
    method = saved_card(set_default=True)
    customer = Customer.objects.get(customer_id="cus_42")
    url = f"{CHANGELIST}{customer.pk}/detach/{method['id']}/"

    refused = agent.post(url, {"reason": "   "})
    assert refused.status_code == 200
    assert PaymentMethod.objects.get(public_id=method["id"]).status == "active"

    done = agent.post(url, {"reason": "customer asked by phone"})

    assert done.status_code == 302
    stored = PaymentMethod.objects.get(public_id=method["id"])
    assert stored.status == "detached"
    assert Customer.objects.get(pk=customer.pk).default_payment_method is None
    action = StaffAction.objects.get(action="detach_payment_method")
    assert (action.object_id, action.reason, action.actor.username) == (
        method["id"],
        "customer asked by phone",
        "agent",
    )
    assert Event.objects.filter(subject_id=method["id"], type="payment_method.detached").count() == 1
    assert SimulatorGateway.call_count("detach_payment_method") == 1


def test_an_auditor_sees_the_page_but_cannot_detach_and_nobody_can_add(auditor, storefront, saved_card):
    method = saved_card()
    customer = Customer.objects.get(customer_id="cus_42")

    page = auditor.get(f"{CHANGELIST}{customer.pk}/change/")
    detach = auditor.post(f"{CHANGELIST}{customer.pk}/detach/{method['id']}/", {"reason": "no"})

    assert page.status_code == 200
    assert "detach-link" not in page.content.decode()
    assert detach.status_code == 403
    assert PaymentMethod.objects.get(public_id=method["id"]).status == "active"
    assert auditor.get("/admin/customers/paymentmethod/add/").status_code == 403
    assert auditor.get(f"{CHANGELIST}add/").status_code == 403
