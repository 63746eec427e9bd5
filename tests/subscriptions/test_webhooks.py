"""Billing webhooks through the inbox: stored once, applied once, in any order; late news never moves back."""

import copy
import itertools

import pytest

from accounts.models import User
from events.models import Event
from gateways.simulator import SimulatorGateway
from payments.models import Payment
from subscriptions.models import Invoice, Subscription
from tests.subscriptions.conftest import DAY
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db
_ids = itertools.count(1)


def _clock_events(seconds: int) -> list[dict]:
    """What the simulator's clock says falls due (without delivering it): Stripe-shaped events, oldest first."""
    client = User.objects.get(username="storefront-a")
    _, events = SimulatorGateway().advance_clock(clock=f"client:{client.pk}", seconds=seconds)
    return events


def _of_type(events: list[dict], event_type: str) -> list[dict]:
    return [event for event in events if event["type"] == event_type]


def _again(event: dict, **changes) -> dict:
    """Another delivery id with the object changed (as a late or different event of Stripe's)."""
    other = copy.deepcopy(event)
    other["id"] = f"evt_test_{next(_ids)}"
    other["data"]["object"].update(changes)
    return other


def test_a_renewal_delivered_backwards_and_twice_ends_as_in_order(storefront, subscribe, deliver):
    sub = subscribe().json()
    events = _clock_events(32 * DAY)
    assert _of_type(events, "invoice.paid")
    for event in reversed(events):
        deliver(event)
        deliver(event)
    assert WebhookEvent.objects.count() == len(events)
    row = Subscription.objects.get(public_id=sub["id"])
    assert row.status == "active"
    assert row.current_period_start.isoformat() > sub["current_period_start"].replace("Z", "")
    invoices = list(Invoice.objects.filter(subscription=row).order_by("period_start"))
    assert [invoice.status for invoice in invoices] == ["paid", "paid"]
    assert row.latest_invoice == invoices[-1]
    payments = Payment.objects.filter(invoice__in=[invoice.public_id for invoice in invoices])
    assert payments.count() == 2
    assert {invoice.payment_id for invoice in invoices} == set(payments.values_list("pk", flat=True))
    for invoice in invoices:
        assert Event.objects.filter(subject_id=invoice.public_id, type="invoice.paid").count() == 1
        assert Event.objects.filter(subject_id=invoice.public_id, type="invoice.created").count() == 1


def test_a_stale_subscription_update_never_moves_it_back(storefront, subscribe, deliver):
    sub = subscribe().json()
    events = _clock_events(32 * DAY)
    for event in events:
        deliver(event)
    renewed = Subscription.objects.get(public_id=sub["id"])
    assert renewed.status == "active"
    update = _of_type(events, "customer.subscription.updated") or _of_type(events, "customer.subscription.created")
    stale_object = update[-1]["data"]["object"]
    period_length = stale_object["current_period_end"] - stale_object["current_period_start"]
    late = _again(
        update[-1],
        status="past_due",
        current_period_start=stale_object["current_period_start"] - period_length,
        current_period_end=stale_object["current_period_start"],
    )
    deliver(late)
    assert WebhookEvent.objects.get(stripe_id=late["id"]).ignored_reason == "stale"
    after = Subscription.objects.get(public_id=sub["id"])
    assert (after.status, after.current_period_start) == ("active", renewed.current_period_start)
    assert not Event.objects.filter(subject_id=sub["id"], type="subscription.past_due").exists()


def test_news_of_the_same_period_is_what_the_gateway_says_now(storefront, subscribe, deliver):
    sub = subscribe().json()
    events = _clock_events(60)
    created = _of_type(events, "customer.subscription.created")[0]
    for event in events:
        deliver(event)
    wrong = _again(created, status="past_due")  # same period; the gateway says active
    deliver(wrong)
    assert Subscription.objects.get(public_id=sub["id"]).status == "active"
    assert not Event.objects.filter(subject_id=sub["id"], type="subscription.past_due").exists()
    canceled = storefront.delete(f"/api/v1/subscriptions/{sub['id']}/")
    assert canceled.status_code == 200
    deliver(_again(created, status="active"))  # a late "active" after the cancel
    assert Subscription.objects.get(public_id=sub["id"]).status == "canceled"


def test_a_late_payment_failure_after_paid_changes_nothing(storefront, subscribe, deliver):
    sub = subscribe().json()
    events = _clock_events(32 * DAY)
    for event in events:
        deliver(event)
    paid = _of_type(events, "invoice.paid")[-1]
    failed = _again(paid, type="invoice.payment_failed", status="open", amount_paid=0, attempt_count=2)
    failed["type"] = "invoice.payment_failed"
    deliver(failed)
    invoice = Invoice.objects.get(gateway_reference=paid["data"]["object"]["id"])
    assert invoice.status == "paid"
    assert invoice.payment.status == "succeeded"
    assert WebhookEvent.objects.get(stripe_id=failed["id"]).ignored_reason == "stale"
    assert not Event.objects.filter(subject_id=invoice.public_id, type="invoice.payment_failed").exists()
    assert Subscription.objects.get(public_id=sub["id"]).status == "active"


def test_billing_events_of_unknown_customers_are_ignored(deliver, subscribe, storefront):
    subscribe()
    events = _clock_events(60)
    for event in events:
        stranger = _again(event, customer="cus_unknown", id=event["data"]["object"]["id"] + "x")
        deliver(stranger)
        assert WebhookEvent.objects.get(stripe_id=stranger["id"]).ignored_reason in ("unknown_object", "unknown_type")
    assert Subscription.objects.count() == 1
