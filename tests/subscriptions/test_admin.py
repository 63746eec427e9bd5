"""The subscription back office: changelists of constant cost, read-only pages, staff's audited cancel."""

import importlib

import pytest
from django.apps import apps as django_apps
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.models import StaffAction
from subscriptions.models import Subscription
from tests.accounts.factories import StaffUserFactory
from tests.customers.conftest import create_customer_staff_groups

pytestmark = pytest.mark.django_db


def _groups() -> None:
    create_customer_staff_groups()
    importlib.import_module("subscriptions.migrations.0002_staff_permissions").grant_permissions(django_apps, None)


@pytest.fixture
def agent() -> Client:
    _groups()
    client = Client()
    client.force_login(StaffUserFactory(username="agent", groups=["finance_agent"]))
    return client


@pytest.fixture
def auditor() -> Client:
    _groups()
    client = Client()
    client.force_login(StaffUserFactory(username="auditor-1", groups=["auditor"]))
    return client


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries)


def test_changelists_show_status_price_customer_period_and_cost_the_same(agent, subscribe):
    sub = subscribe(customer_id="cus_1").json()
    few = (_queries(agent, "/admin/subscriptions/subscription/"), _queries(agent, "/admin/subscriptions/invoice/"))
    for index in range(2, 7):
        subscribe(customer_id=f"cus_{index}")
    many = (_queries(agent, "/admin/subscriptions/subscription/"), _queries(agent, "/admin/subscriptions/invoice/"))
    assert few == many
    page = agent.get("/admin/subscriptions/subscription/", {"q": sub["id"]}).content.decode()
    assert sub["id"] in page
    assert "price_basic_monthly" in page
    assert "cus_2" not in page
    invoices = agent.get("/admin/subscriptions/invoice/", {"q": sub["latest_invoice"]}).content.decode()
    assert "$9.00" in invoices
    by_customer = agent.get("/admin/subscriptions/subscription/", {"q": "cus_3"}).content.decode()
    assert "cus_3" in by_customer


def test_staff_cancel_needs_a_reason_and_is_audited(agent, subscribe):
    sub = subscribe().json()
    row = Subscription.objects.get(public_id=sub["id"])
    page = agent.get(f"/admin/subscriptions/subscription/{row.pk}/change/").content.decode()
    assert "staff-cancel" in page
    url = f"/admin/subscriptions/subscription/{row.pk}/cancel/"
    refused = agent.post(url, {"reason": "  "})
    assert refused.status_code == 200
    assert Subscription.objects.get(pk=row.pk).status == "active"
    done = agent.post(url, {"reason": "Customer asked by phone", "at_period_end": "on"})
    assert done.status_code == 302
    row.refresh_from_db()
    assert (row.status, row.cancel_at_period_end) == ("active", True)
    action = StaffAction.objects.get(object_id=sub["id"])
    assert (action.action, action.reason) == ("cancel_subscription", "Customer asked by phone")
    now = agent.post(url, {"reason": "Fraud"})
    assert now.status_code == 302
    row.refresh_from_db()
    assert row.status == "canceled"
    change = row.status_changes.get(to_status="canceled")
    assert (change.source, change.reason, change.actor.username) == ("admin", "Fraud", "agent")
    assert agent.get(url).status_code == 302  # ended: nothing to cancel


def test_auditors_read_but_cannot_cancel_or_edit(auditor, subscribe):
    sub = subscribe().json()
    row = Subscription.objects.get(public_id=sub["id"])
    page = auditor.get(f"/admin/subscriptions/subscription/{row.pk}/change/")
    assert page.status_code == 200
    assert "staff-cancel" not in page.content.decode()
    assert auditor.post(f"/admin/subscriptions/subscription/{row.pk}/cancel/", {"reason": "x"}).status_code == 403
    assert auditor.post(f"/admin/subscriptions/subscription/{row.pk}/change/", {"quantity": 5}).status_code == 403
    assert Subscription.objects.get(pk=row.pk).status == "active"


def test_staff_who_view_a_subscription_see_its_status_history(agent, auditor, subscribe):
    subscribe(payment_method="pm_card_chargeCustomerFail")  # 402: incomplete, one history row
    subscription = Subscription.objects.get()
    for client in (agent, auditor):
        page = client.get(f"/admin/subscriptions/subscription/{subscription.pk}/change/").content.decode()
        # The history inline: its column headers and the one row (no status before the first).
        assert "From status" in page
        assert "To status" in page
