"""An invoice's charge is a payment (#18): created once per intent, moved by the state machine, shown with `invoice`."""

import threading

import pytest

from events.models import Event
from gateways.base import Declined
from payments.models import Payment, PaymentStatusChange
from payments.services import payment_record_for_invoice

pytestmark = pytest.mark.django_db


def _charged(simulator, token: str = "pm_card_visa", amount: int = 2900):  # noqa: S107 - a test card token
    try:
        return simulator.create_intent(
            amount=amount,
            currency="usd",
            capture_method="automatic",
            payment_method=token,
            confirm=True,
            metadata={"invoice": "in_test"},
            description="",
            idempotency_key=f"invoice-test:{token}:{amount}",
        )
    except Declined as exc:
        declined = exc.intent  # Stripe puts the intent in the decline
    assert declined is not None
    return declined


def test_a_paid_invoice_has_one_succeeded_payment_that_says_its_invoice(storefront, simulator):
    intent = _charged(simulator)

    first = payment_record_for_invoice(
        client=storefront.user, customer_id="cus_sub", intent=intent, invoice_id="in_abc"
    )
    again = payment_record_for_invoice(
        client=storefront.user, customer_id="cus_sub", intent=intent, invoice_id="in_abc"
    )

    assert first.pk == again.pk
    assert (again.status, again.amount, again.invoice, again.gateway_reference) == (
        "succeeded",
        2900,
        "in_abc",
        intent.reference,
    )
    assert list(
        PaymentStatusChange.objects.filter(payment=first).order_by("id").values_list("to_status", flat=True)
    ) == [
        "requires_confirmation",
        "succeeded",
    ]
    body = storefront.get(f"/api/v1/payments/{first.public_id}/").json()
    assert (body["invoice"], body["status"], body["customer_id"]) == ("in_abc", "succeeded", "cus_sub")
    assert Event.objects.filter(subject_id=first.public_id, type="payment.initiated").count() == 1


def test_a_declined_attempt_keeps_the_payment_open_for_the_retry_and_a_final_one_fails_it(storefront, simulator):
    """Dunning retries an invoice with the same intent: only the last attempt (final) fails the payment."""
    intent = _charged(simulator, "pm_card_chargeDeclined")

    attempted = payment_record_for_invoice(
        client=storefront.user, customer_id="cus_sub", intent=intent, invoice_id="in_failed"
    )
    again = payment_record_for_invoice(
        client=storefront.user, customer_id="cus_sub", intent=intent, invoice_id="in_failed"
    )

    assert attempted.pk == again.pk
    assert (again.status, again.failure_code) == ("requires_confirmation", "card_declined")
    final = payment_record_for_invoice(
        client=storefront.user, customer_id="cus_sub", intent=intent, invoice_id="in_failed", final=True
    )
    assert (final.pk, final.status, final.failure_code) == (attempted.pk, "failed", "card_declined")


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_one_invoice_make_one_payment(storefront, simulator):
    intent = _charged(simulator, amount=900)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            barrier.wait()
            payment_record_for_invoice(client=storefront.user, customer_id="cus_sub", intent=intent, invoice_id="in_x")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert Payment.objects.filter(invoice="in_x").count() == 1
    assert Payment.objects.get(invoice="in_x").status == "succeeded"
