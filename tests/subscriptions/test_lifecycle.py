"""A subscription's life on the simulator's billing clock, through the API and the webhook inbox it feeds."""

from datetime import datetime

import pytest

from events.models import Event
from payments.models import Payment
from subscriptions.models import Invoice, Subscription
from tests.subscriptions.conftest import DAY

pytestmark = pytest.mark.django_db


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _event_types(subject_id: str) -> list[str]:
    return list(Event.objects.filter(subject_id=subject_id).order_by("sequence").values_list("type", flat=True))


@pytest.mark.parametrize(
    ("price", "currency", "amount"), [("price_basic_monthly", "usd", 900), ("price_jpy_monthly", "jpy", 1000)]
)
def test_a_trial_then_a_year_of_renewals(storefront, subscribe, advance, price, currency, amount):
    created = subscribe(price=price, trial_days=14)
    assert created.status_code == 201, created.json()
    sub = created.json()
    assert sub["status"] == "trialing"
    trial_end = _at(sub["trial_end"])
    assert (trial_end - _at(sub["trial_start"])).days == 14

    advance(11 * DAY)  # three days before the trial ends
    assert _event_types(sub["id"]).count("subscription.trial_will_end") == 1
    assert not Payment.objects.exists()

    advance(3 * DAY)  # the trial ends: the first invoice is charged
    after_trial = storefront.get(f"/api/v1/subscriptions/{sub['id']}/").json()
    assert after_trial["status"] == "active"
    assert _at(after_trial["current_period_start"]) == trial_end
    first = storefront.get(f"/api/v1/invoices/{after_trial['latest_invoice']}/").json()
    assert (first["status"], first["amount_paid"], first["currency"]) == ("paid", amount, currency)

    advance(340 * DAY)  # eleven more renewals, not the twelfth (a year after the trial ends)
    invoices = storefront.get("/api/v1/invoices/", {"subscription": sub["id"], "page_size": 100}).json()["results"]
    charged = [invoice for invoice in invoices if invoice["amount_due"] > 0]
    assert len(charged) == 12
    assert all(invoice["status"] == "paid" for invoice in charged)
    assert all(invoice["amount_paid"] == amount and invoice["currency"] == currency for invoice in charged)
    payments = Payment.objects.filter(invoice__in=[invoice["id"] for invoice in charged])
    assert payments.count() == 12
    assert {(p.amount, p.currency, p.status) for p in payments} == {(amount, currency, "succeeded")}
    assert len({invoice["payment"] for invoice in charged}) == 12
    periods = sorted(_at(invoice["period_start"]) for invoice in charged)
    assert periods[0] == trial_end
    assert len(set(periods)) == 12
    now = storefront.get(f"/api/v1/subscriptions/{sub['id']}/").json()
    assert now["status"] == "active"
    assert _at(now["current_period_start"]) == periods[-1]
    paid_events = Event.objects.filter(type="invoice.paid", subject_id__in=[i["id"] for i in charged])
    assert paid_events.count() == 12


def test_dunning_to_past_due_then_canceled(storefront, subscribe, advance):
    sub = subscribe().json()
    failing = storefront.patch(
        f"/api/v1/subscriptions/{sub['id']}/", {"payment_method": "pm_card_chargeCustomerFail"}, format="json"
    )
    assert failing.status_code == 200, failing.json()
    advance(32 * DAY)  # the renewal is declined
    past_due = storefront.get(f"/api/v1/subscriptions/{sub['id']}/").json()
    assert past_due["status"] == "past_due"
    renewal = storefront.get(f"/api/v1/invoices/{past_due['latest_invoice']}/").json()
    assert renewal["status"] == "open"
    assert renewal["next_payment_attempt"] is not None
    assert "subscription.past_due" in _event_types(sub["id"])
    assert "invoice.payment_failed" in _event_types(renewal["id"])

    advance(8 * DAY)  # retries on days 1, 3, 5 and 7, then canceled
    ended = storefront.get(f"/api/v1/subscriptions/{sub['id']}/").json()
    assert ended["status"] == "canceled"
    invoice = Invoice.objects.get(public_id=renewal["id"])
    assert invoice.status == "uncollectible"
    assert invoice.attempt_count == 5
    assert invoice.payment is not None
    assert invoice.payment.status == "failed"
    assert _event_types(sub["id"]).count("subscription.canceled") == 1
    row = Subscription.objects.get(public_id=sub["id"])
    statuses = list(row.status_changes.values_list("to_status", flat=True))
    assert statuses == ["active", "past_due", "canceled"]


def test_dunning_may_end_unpaid(storefront, subscribe, advance, settings):
    settings.SIMULATOR_DUNNING_FINAL_STATUS = "unpaid"
    sub = subscribe().json()
    storefront.patch(
        f"/api/v1/subscriptions/{sub['id']}/", {"payment_method": "pm_card_chargeCustomerFail"}, format="json"
    )
    advance(40 * DAY)
    assert storefront.get(f"/api/v1/subscriptions/{sub['id']}/").json()["status"] == "unpaid"


def test_incomplete_expires_after_23_hours(storefront, subscribe, advance):
    response = subscribe(payment_method="pm_card_chargeCustomerFail")
    assert response.status_code == 402
    sub = Subscription.objects.get()
    advance(22 * 3600)
    sub.refresh_from_db()
    assert sub.status == "incomplete"
    advance(2 * 3600)
    sub.refresh_from_db()
    assert sub.status == "incomplete_expired"
    assert list(sub.status_changes.values_list("to_status", flat=True)) == ["incomplete", "incomplete_expired"]


def test_the_clock_is_per_client_and_bounded(storefront, make_client, subscribe, advance):
    other = make_client("storefront-b")
    sub = subscribe().json()
    advance(40 * DAY, client=other)  # another client's clock: nothing of ours falls due
    assert Invoice.objects.filter(subscription__public_id=sub["id"]).count() == 1
    for seconds in (0, 3 * 365 * DAY + 1, "60"):
        response = storefront.post("/api/v1/test_helpers/advance_clock/", {"seconds": seconds}, format="json")
        assert response.status_code == 400, seconds


def test_the_clock_is_404_off_the_simulator(storefront, settings):
    settings.PAYMENTS_GATEWAY = "stripe"
    response = storefront.post("/api/v1/test_helpers/advance_clock/", {"seconds": 60}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "resource_missing"


def test_the_clock_honours_an_idempotency_key(storefront, subscribe, tasks_inline, django_capture_on_commit_callbacks):
    sub = subscribe().json()
    with django_capture_on_commit_callbacks(execute=True):
        first = storefront.post(
            "/api/v1/test_helpers/advance_clock/", {"seconds": 32 * DAY}, format="json", HTTP_IDEMPOTENCY_KEY="tick-1"
        )
        again = storefront.post(
            "/api/v1/test_helpers/advance_clock/", {"seconds": 32 * DAY}, format="json", HTTP_IDEMPOTENCY_KEY="tick-1"
        )
    assert first.status_code == again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Invoice.objects.filter(subscription__public_id=sub["id"]).count() == 2  # moved once, not twice


def test_the_clock_command_moves_a_clients_clock(
    storefront, subscribe, tasks_inline, django_capture_on_commit_callbacks
):
    from io import StringIO

    from django.core.management import CommandError, call_command

    sub = subscribe().json()
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("simulator_advance_clock", "--client", "storefront-a", "--seconds", str(32 * DAY), stdout=out)
    assert "Clock of storefront-a is now" in out.getvalue()
    assert Invoice.objects.filter(subscription__public_id=sub["id"], status="paid").count() == 2
    with pytest.raises(CommandError):
        call_command("simulator_advance_clock", "--client", "nobody", "--seconds", "60")
    with pytest.raises(CommandError):
        call_command("simulator_advance_clock", "--client", "storefront-a", "--seconds", "0")
