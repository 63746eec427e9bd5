"""An invoice's charge is a `pay_` payment: refunded like one-off money, failed when the invoice is given up."""

import pytest

from events.models import Event
from payments.models import Payment
from subscriptions.models import Invoice, Subscription
from tests.subscriptions.conftest import DAY

pytestmark = pytest.mark.django_db


def _refund(storefront, payment_id: str, key: str, **body):
    return storefront.post(f"/api/v1/payments/{payment_id}/refunds/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_renewals_payment_is_refunded_in_part_then_in_full_like_any_payment(
    storefront, subscribe, advance, django_capture_on_commit_callbacks
):
    sub = subscribe(price="price_pro_monthly").json()
    advance(31 * DAY)  # the first renewal
    renewal = Invoice.objects.filter(subscription__public_id=sub["id"]).order_by("-period_start").first()
    assert renewal is not None
    assert renewal.status == "paid"
    assert renewal.payment is not None
    payment = storefront.get(f"/api/v1/payments/{renewal.payment.public_id}/").json()
    assert (payment["status"], payment["amount"], payment["invoice"]) == ("succeeded", 2900, renewal.public_id)

    with django_capture_on_commit_callbacks(execute=True):
        first = _refund(storefront, payment["id"], "inv-refund-1", amount=900)
    assert first.status_code == 201, first.json()
    with django_capture_on_commit_callbacks(execute=True):
        rest = _refund(storefront, payment["id"], "inv-refund-2")
    assert rest.status_code == 201, rest.json()
    assert rest.json()["amount"] == 2000
    after = storefront.get(f"/api/v1/payments/{payment['id']}/").json()
    assert (after["status"], after["amount_refunded"], after["invoice"]) == ("refunded", 2900, renewal.public_id)
    again = _refund(storefront, payment["id"], "inv-refund-3", amount=1)
    assert again.status_code == 409, again.json()
    types = list(Event.objects.filter(subject_id=payment["id"]).order_by("sequence").values_list("type", flat=True))
    assert types.count("refund.succeeded") == 2
    # The invoice stays paid: a refund is money given back, not an unpaid invoice.
    assert storefront.get(f"/api/v1/invoices/{renewal.public_id}/").json()["status"] == "paid"


def test_the_declined_first_invoice_of_an_expired_subscription_fails_its_payment(storefront, subscribe, advance):
    response = subscribe(payment_method="pm_card_chargeCustomerFail")
    assert response.status_code == 402
    invoice = Invoice.objects.get()
    assert invoice.payment is not None
    attempt = Payment.objects.get(pk=invoice.payment_id)
    assert (attempt.status, attempt.failure_code) == ("requires_confirmation", "card_declined")

    advance(24 * 3600)  # incomplete → incomplete_expired: Stripe voids its first invoice

    assert Subscription.objects.get().status == "incomplete_expired"
    invoice.refresh_from_db()
    attempt.refresh_from_db()
    assert invoice.status == "void"
    assert attempt.status == "failed"
    body = storefront.get(f"/api/v1/payments/{attempt.public_id}/").json()
    assert (body["status"], body["invoice"]) == ("failed", invoice.public_id)
    assert _refund(storefront, attempt.public_id, "void-refund").status_code == 409
