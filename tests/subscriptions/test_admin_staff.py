"""Staff's invoice actions and price creation in the back office, and the customer page's subscriptions."""

import importlib
import uuid

import pytest
from django.apps import apps as django_apps
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.models import ApprovalRequest, ApprovalStatus, StaffAction
from customers.models import Customer
from events.models import Event
from gateways.simulator import SimulatorGateway
from subscriptions.models import Invoice, Price, Subscription
from subscriptions.services import billing_gateway
from subscriptions.staff import InvoiceNotOpen, invoice_retry
from tests.accounts.factories import StaffUserFactory
from tests.customers.conftest import create_customer_staff_groups

pytestmark = pytest.mark.django_db

FAILING_CARD = "pm_card_chargeCustomerFail"


def _groups() -> None:
    create_customer_staff_groups()
    for name in ("0002_staff_permissions", "0003_staff_invoice_price_permissions"):
        importlib.import_module(f"subscriptions.migrations.{name}").grant_permissions(django_apps, None)


def _staff(username: str, group: str) -> Client:
    _groups()
    client = Client()
    client.force_login(StaffUserFactory(username=username, groups=[group]))
    return client


@pytest.fixture
def agent() -> Client:
    return _staff("agent", "finance_agent")


@pytest.fixture
def lead() -> Client:
    return _staff("lead-1", "finance_lead")


@pytest.fixture
def second_lead() -> Client:
    return _staff("lead-2", "finance_lead")


@pytest.fixture
def auditor() -> Client:
    return _staff("auditor-1", "auditor")


@pytest.fixture
def declined_invoice(subscribe):
    """An incomplete subscription whose first invoice was declined: open, one attempt, its payment open."""

    def make(**body) -> Invoice:
        response = subscribe(payment_method=FAILING_CARD, **body)
        assert response.status_code == 402, response.json()
        invoice = Invoice.objects.select_related("payment", "subscription").get(
            subscription__customer__customer_id="cus_42"
        )
        assert (invoice.status, invoice.attempt_count, invoice.failure_code) == ("open", 1, "card_declined")
        return invoice

    return make


def _url(invoice: Invoice, action: str) -> str:
    return f"/admin/subscriptions/invoice/{invoice.pk}/{action}/"


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# --- retry -------------------------------------------------------------------------------------------------------
def test_retry_after_the_card_is_fixed_pays_the_invoice_and_its_payment(
    agent, storefront, declined_invoice, django_capture_on_commit_callbacks
):
    # given a declined first invoice, and the customer's card fixed on the subscription
    invoice = declined_invoice()
    with django_capture_on_commit_callbacks(execute=True):
        fixed = storefront.patch(
            f"/api/v1/subscriptions/{invoice.subscription.public_id}/",
            {"payment_method": "pm_card_visa"},
            format="json",
        )
    assert fixed.status_code == 200, fixed.json()
    page = agent.get(f"/admin/subscriptions/invoice/{invoice.pk}/change/").content.decode()
    assert "staff-retry" in page
    assert f'href="/admin/payments/payment/{invoice.payment.pk}/change/" id="invoice-payment"' in page
    assert f'href="/admin/subscriptions/subscription/{invoice.subscription.pk}/change/"' in page

    # when staff retry without a reason, then with one
    refused = agent.post(_url(invoice, "retry"), {"reason": " "})
    assert refused.status_code == 200
    assert Invoice.objects.get(pk=invoice.pk).attempt_count == 1
    done = agent.post(_url(invoice, "retry"), {"reason": "Card updated by phone"}, follow=True)

    # then the invoice is paid, its payment succeeded, the subscription active, and the action audited
    assert f"Invoice {invoice.public_id} paid." in _messages(done)
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid, invoice.amount_remaining, invoice.attempt_count) == ("paid", 900, 0, 2)
    assert (invoice.payment.status, invoice.payment.amount) == ("succeeded", 900)
    subscription = Subscription.objects.get(pk=invoice.subscription_id)
    assert subscription.status == "active"
    change = subscription.status_changes.get(to_status="active")
    assert (change.source, change.reason, change.actor.username) == ("admin", "Card updated by phone", "agent")
    assert Event.objects.filter(type="invoice.paid", subject_id=invoice.public_id).count() == 1
    action = StaffAction.objects.get(action="retry_invoice")
    assert (action.object_id, action.reason, action.actor.username) == (
        invoice.public_id,
        "Card updated by phone",
        "agent",
    )
    assert (action.before["status"], action.after["status"], action.after["payment_status"]) == (
        "open",
        "paid",
        "succeeded",
    )


def test_retry_with_the_declining_card_leaves_it_open_with_the_failure_code(agent, declined_invoice):
    invoice = declined_invoice()

    done = agent.post(_url(invoice, "retry"), {"reason": "Customer says it works now"}, follow=True)

    assert f"Invoice {invoice.public_id}: the attempt was declined (card_declined)." in _messages(done)
    invoice.refresh_from_db()
    assert (invoice.status, invoice.attempt_count, invoice.failure_code) == ("open", 2, "card_declined")
    assert (invoice.payment.status, invoice.payment.failure_code) == ("requires_confirmation", "card_declined")
    assert Subscription.objects.get(pk=invoice.subscription_id).status == "incomplete"
    action = StaffAction.objects.get(action="retry_invoice")
    assert (action.after["status"], action.after["attempt_count"]) == ("open", 2)


def test_retry_is_refused_on_a_paid_invoice_and_for_auditors(agent, auditor, subscribe):
    sub = subscribe().json()
    invoice = Invoice.objects.get(public_id=sub["latest_invoice"])
    assert invoice.status == "paid"
    calls_before = invoice.attempt_count

    page = agent.get(f"/admin/subscriptions/invoice/{invoice.pk}/change/").content.decode()
    assert "staff-retry" not in page
    assert "staff-mark-uncollectible" not in page
    refused = agent.post(_url(invoice, "retry"), {"reason": "Again"}, follow=True)
    assert f"Invoice {invoice.public_id} is paid: nothing to retry." in _messages(refused)
    with pytest.raises(InvoiceNotOpen):
        invoice_retry(invoice=invoice, actor=StaffUserFactory(), reason="Again")
    assert auditor.post(_url(invoice, "retry"), {"reason": "Again"}).status_code == 403
    assert auditor.post(_url(invoice, "mark_uncollectible"), {"reason": "Again"}).status_code == 403

    invoice.refresh_from_db()
    assert (invoice.status, invoice.attempt_count) == ("paid", calls_before)
    assert not StaffAction.objects.exists()


# --- mark uncollectible ---------------------------------------------------------------------------------------------
def test_mark_uncollectible_within_the_limit_is_done_at_once(agent, declined_invoice):
    invoice = declined_invoice()  # $9.00, within the $500.00 limit
    assert (
        "staff-mark-uncollectible" in agent.get(f"/admin/subscriptions/invoice/{invoice.pk}/change/").content.decode()
    )

    done = agent.post(_url(invoice, "mark_uncollectible"), {"reason": "Customer gone"}, follow=True)

    assert f"Invoice {invoice.public_id} marked uncollectible." in _messages(done)
    invoice.refresh_from_db()
    assert invoice.status == "uncollectible"
    assert invoice.payment.status == "failed"
    assert not ApprovalRequest.objects.exists()
    action = StaffAction.objects.get(action="mark_invoice_uncollectible")
    assert (action.object_id, action.reason, action.actor.username) == (invoice.public_id, "Customer gone", "agent")
    assert (action.before["status"], action.after["status"], action.after["payment_status"]) == (
        "open",
        "uncollectible",
        "failed",
    )
    again = agent.post(_url(invoice, "mark_uncollectible"), {"reason": "Twice"}, follow=True)
    assert f"Invoice {invoice.public_id} is uncollectible already." in _messages(again)
    assert StaffAction.objects.filter(action="mark_invoice_uncollectible").count() == 1


def test_mark_uncollectible_above_the_limit_needs_a_second_staff_member(
    lead, second_lead, declined_invoice, django_capture_on_commit_callbacks
):
    # given an open invoice of $900.00, above the $500.00 limit
    invoice = declined_invoice(quantity=100)
    assert invoice.amount_remaining == 90000

    # when a lead asks to write it off
    asked = lead.post(_url(invoice, "mark_uncollectible"), {"reason": "Bankrupt"}, follow=True)

    # then a request waits, and nothing changed
    request = ApprovalRequest.objects.get()
    assert f"Above the approval limit: request {request.pk} waits for another staff member's approval." in _messages(
        asked
    )
    assert (request.kind, request.object_id, request.status) == (
        "invoice_mark_uncollectible",
        invoice.public_id,
        "pending",
    )
    assert request.params == {"amount_remaining": 90000, "currency": "usd"}
    assert Invoice.objects.get(pk=invoice.pk).status == "open"
    listed = lead.get("/admin/audit/approvalrequest/").content.decode()
    assert "mark uncollectible ($900.00 unpaid)" in listed

    # when the requester approves their own request, nothing runs
    decide = {"action": "approve_selected", ACTION_CHECKBOX_NAME: [request.pk]}
    with django_capture_on_commit_callbacks(execute=True):
        own = lead.post("/admin/audit/approvalrequest/", decide, follow=True)
    assert any("cannot approve or reject your own request" in text for text in _messages(own))
    request.refresh_from_db()
    assert request.status == ApprovalStatus.PENDING
    assert Invoice.objects.get(pk=invoice.pk).status == "open"
    assert not StaffAction.objects.filter(action="mark_invoice_uncollectible").exists()

    # when a second lead approves it
    with django_capture_on_commit_callbacks(execute=True):
        second_lead.post("/admin/audit/approvalrequest/", decide)

    # then the invoice is written off at the gateway and here, its payment failed, all of it audited
    request.refresh_from_db()
    assert (request.status, request.decided_by.username) == (ApprovalStatus.APPROVED, "lead-2")
    invoice.refresh_from_db()
    assert invoice.status == "uncollectible"
    assert invoice.payment.status == "failed"
    assert billing_gateway().retrieve_invoice(reference=invoice.gateway_reference).status == "uncollectible"
    done = StaffAction.objects.get(action="mark_invoice_uncollectible")
    assert (done.actor.username, done.reason, done.after["approval_request"]) == ("lead-2", "Bankrupt", request.pk)
    assert list(StaffAction.objects.order_by("id").values_list("action", "actor__username")) == [
        ("request_invoice_mark_uncollectible", "lead-1"),
        ("approve", "lead-2"),
        ("invoice_mark_uncollectible", "lead-2"),
        ("mark_invoice_uncollectible", "lead-2"),
    ]


def test_an_approval_for_an_invoice_paid_meanwhile_fails_and_changes_nothing(
    lead, second_lead, storefront, declined_invoice, django_capture_on_commit_callbacks
):
    invoice = declined_invoice(quantity=100)
    lead.post(_url(invoice, "mark_uncollectible"), {"reason": "Bankrupt"})
    request = ApprovalRequest.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        storefront.patch(
            f"/api/v1/subscriptions/{invoice.subscription.public_id}/",
            {"payment_method": "pm_card_visa"},
            format="json",
        )
    second_lead.post(_url(invoice, "retry"), {"reason": "Card fixed"})
    assert Invoice.objects.get(pk=invoice.pk).status == "paid"

    with django_capture_on_commit_callbacks(execute=True):
        second_lead.post(
            "/admin/audit/approvalrequest/", {"action": "approve_selected", ACTION_CHECKBOX_NAME: [request.pk]}
        )

    request.refresh_from_db()
    assert request.status == ApprovalStatus.FAILED
    assert "is paid" in request.result
    invoice.refresh_from_db()
    assert (invoice.status, invoice.payment.status) == ("paid", "succeeded")
    assert not StaffAction.objects.filter(action="mark_invoice_uncollectible").exists()


# --- prices ------------------------------------------------------------------------------------------------------
def _price_form(**fields) -> dict:
    return {
        "product_name": "Pro plan",
        "unit_amount": "9.99",
        "currency": "usd",
        "interval": "month",
        "interval_count": "1",
        "trial_period_days": "",
        "form_token": uuid.uuid4().hex,
        **fields,
    }


def _gateway_prices(name: str) -> list:
    return [price for price in billing_gateway().list_prices() if price.product_name == name]


@pytest.mark.parametrize(
    ("currency", "typed", "minor", "shown"),
    [("usd", "9.99", 999, "$9.99"), ("jpy", "1000", 1000, "¥1,000"), ("kwd", "1.25", 1250, "1.250 KD")],
)
def test_a_finance_lead_creates_a_price_at_the_gateway_and_here(lead, prices, currency, typed, minor, shown):
    changelist = lead.get("/admin/subscriptions/price/").content.decode()
    assert 'id="add-price"' in changelist
    assert lead.get("/admin/subscriptions/price/create/").status_code == 200
    form = _price_form(product_name=f"Pro {currency}", unit_amount=typed, currency=currency, trial_period_days="14")

    created = lead.post("/admin/subscriptions/price/create/", form, follow=True)
    lead.post("/admin/subscriptions/price/create/", form)  # a double submit (the same form token)

    price = Price.objects.select_related("product").get(product__name=f"Pro {currency}")
    assert (price.unit_amount, price.currency, price.interval, price.trial_period_days) == (
        minor,
        currency,
        "month",
        14,
    )
    assert f"Price {price.reference} created ({shown})." in _messages(created)
    at_gateway = _gateway_prices(f"Pro {currency}")
    assert [(p.reference, p.unit_amount, p.currency) for p in at_gateway] == [(price.reference, minor, currency)]
    action = StaffAction.objects.get(action="create_price")
    assert (action.object_id, action.actor.username, action.after["unit_amount"]) == (price.reference, "lead-1", minor)


@pytest.mark.parametrize(
    ("currency", "typed", "error"),
    [
        ("jpy", "10.5", "JPY has 0 decimal places"),
        ("usd", "9.999", "USD has 2 decimal places"),
        ("usd", "-1", "is not an amount"),
    ],
)
def test_an_amount_finer_than_the_currency_is_refused(lead, prices, currency, typed, error):
    before = Price.objects.count()

    response = lead.post(
        "/admin/subscriptions/price/create/", _price_form(product_name="Odd", unit_amount=typed, currency=currency)
    )

    assert response.status_code == 200
    assert error in response.content.decode()
    assert Price.objects.count() == before
    assert _gateway_prices("Odd") == []
    assert not StaffAction.objects.exists()


def test_an_agent_cannot_create_a_price(agent, prices):
    assert 'id="add-price"' not in agent.get("/admin/subscriptions/price/").content.decode()
    assert agent.get("/admin/subscriptions/price/create/").status_code == 403
    assert agent.post("/admin/subscriptions/price/create/", _price_form(product_name="Sneaky")).status_code == 403
    assert not Price.objects.filter(product__name="Sneaky").exists()
    assert _gateway_prices("Sneaky") == []


# --- the customer page -----------------------------------------------------------------------------------------------
def _customer_page(client: Client, customer: Customer) -> tuple[str, int]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"/admin/customers/customer/{customer.pk}/change/")
    assert response.status_code == 200
    return response.content.decode(), len(captured.captured_queries)


def test_the_customer_page_lists_its_subscriptions_and_invoices_at_a_constant_cost(agent, subscribe):
    first = subscribe().json()
    customer = Customer.objects.get(customer_id="cus_42")
    page, few = _customer_page(agent, customer)
    row = Subscription.objects.get(public_id=first["id"])
    assert f'href="/admin/subscriptions/subscription/{row.pk}/change/"' in page
    assert first["latest_invoice"] in page
    assert "price_basic_monthly" in page
    assert "$9.00" in page

    for _ in range(3):
        subscribe()
    subscribe(customer_id="cus_other")
    page, many = _customer_page(agent, customer)

    assert many == few
    for sub in Subscription.objects.filter(customer=customer):
        assert sub.public_id in page
        assert sub.latest_invoice.public_id in page
    other = Subscription.objects.get(customer__customer_id="cus_other")
    assert other.public_id not in page


def test_an_approved_write_off_the_gateway_does_not_answer_is_kept_failed_and_a_new_request_finishes_it(
    lead, second_lead, declined_invoice, django_capture_on_commit_callbacks
):
    invoice = declined_invoice(quantity=100)
    lead.post(_url(invoice, "mark_uncollectible"), {"reason": "Bankrupt"})
    request = ApprovalRequest.objects.get()
    decide = {"action": "approve_selected", ACTION_CHECKBOX_NAME: [request.pk]}

    SimulatorGateway.inject_fault("mark_invoice_uncollectible", "unavailable")
    with django_capture_on_commit_callbacks(execute=True):
        second_lead.post("/admin/audit/approvalrequest/", decide)

    # the approval stands; the gateway's failure is in the staff log, and nothing moved
    assert Invoice.objects.get(pk=invoice.pk).status == "open"
    failed = StaffAction.objects.get(action="mark_invoice_uncollectible_failed")
    assert (failed.actor.username, failed.object_id, failed.after["approval_request"]) == (
        "lead-2",
        invoice.public_id,
        request.pk,
    )
    assert not StaffAction.objects.filter(action="mark_invoice_uncollectible").exists()

    # a new request, approved, finishes it with the same gateway key
    lead.post(_url(invoice, "mark_uncollectible"), {"reason": "Bankrupt, again"})
    again = ApprovalRequest.objects.exclude(pk=request.pk).get()
    with django_capture_on_commit_callbacks(execute=True):
        second_lead.post(
            "/admin/audit/approvalrequest/", {"action": "approve_selected", ACTION_CHECKBOX_NAME: [again.pk]}
        )
    assert Invoice.objects.get(pk=invoice.pk).status == "uncollectible"
    assert SimulatorGateway.calls_for_key(f"{invoice.public_id}:mark_uncollectible") == 2
