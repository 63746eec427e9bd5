"""Factories for payments, their status history, API idempotency keys and dead letters."""

import factory
from django.utils import timezone

from payments.models import (
    CaptureMethod,
    ChangeSource,
    DeadLetter,
    IdempotencyKey,
    Payment,
    PaymentStatusChange,
    ReviewState,
)
from payments.states import PaymentStatus as S
from tests.accounts.factories import UserFactory

_gateway_reference = factory.Sequence(lambda n: f"pi_sim_factory_{n}")


class PaymentFactory(factory.django.DjangoModelFactory):
    """A payment as the database holds it (no gateway call, no history, no event): pick a state with a trait.

    Traits: requires_confirmation, requires_action, processing, requires_capture, held (requires_capture
    with a pending review), succeeded, partially_refunded, refunded, canceled, failed. Amounts that
    depend on `amount` follow it, so `PaymentFactory(succeeded=True, amount=500)` stays within the
    database's check constraints.
    """

    class Meta:
        model = Payment

    class Params:
        requires_confirmation = factory.Trait(status=S.REQUIRES_CONFIRMATION, payment_method="pm_card_visa")
        requires_action = factory.Trait(
            status=S.REQUIRES_ACTION,
            payment_method="pm_card_threeDSecure2Required",
            gateway_reference=_gateway_reference,
        )
        processing = factory.Trait(
            status=S.PROCESSING, payment_method="pm_card_visa", gateway_reference=_gateway_reference
        )
        requires_capture = factory.Trait(
            status=S.REQUIRES_CAPTURE,
            capture_method=CaptureMethod.MANUAL,
            amount_capturable=factory.SelfAttribute("amount"),
            payment_method="pm_card_visa",
            gateway_reference=_gateway_reference,
        )
        held = factory.Trait(
            requires_capture=True,
            review_state=ReviewState.PENDING,
            review_reasons=factory.LazyFunction(lambda: ["first_seen_large_amount"]),
            risk_score=60,
            risk_level="elevated",
        )
        succeeded = factory.Trait(
            status=S.SUCCEEDED,
            amount_received=factory.SelfAttribute("amount"),
            payment_method="pm_card_visa",
            gateway_reference=_gateway_reference,
        )
        partially_refunded = factory.Trait(
            succeeded=True,
            status=S.PARTIALLY_REFUNDED,
            amount_refunded=factory.LazyAttribute(lambda payment: payment.amount // 2),
        )
        refunded = factory.Trait(succeeded=True, status=S.REFUNDED, amount_refunded=factory.SelfAttribute("amount"))
        canceled = factory.Trait(status=S.CANCELED, cancellation_reason="requested_by_customer")
        failed = factory.Trait(
            status=S.FAILED,
            payment_method="pm_card_chargeDeclined",
            failure_code="card_declined",
            failure_message="Your card was declined.",
        )

    client = factory.SubFactory(UserFactory)
    amount = 2000
    currency = "usd"
    status = S.REQUIRES_PAYMENT_METHOD
    customer_id = factory.Sequence(lambda n: f"cus_factory_{n}")
    gateway = "simulator"


class PaymentStatusChangeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PaymentStatusChange

    payment = factory.SubFactory(PaymentFactory)
    from_status = ""
    to_status = factory.SelfAttribute("payment.status")
    source = ChangeSource.API


class IdempotencyKeyFactory(factory.django.DjangoModelFactory):
    """A stored Idempotency-Key; `locked=True` for one whose request is still running."""

    class Meta:
        model = IdempotencyKey

    class Params:
        locked = factory.Trait(lock_token="lock-token", locked_at=factory.LazyFunction(timezone.now))

    client = factory.SubFactory(UserFactory)
    key = factory.Sequence(lambda n: f"key-factory-{n}")
    fingerprint = "0" * 64
    created_at = factory.LazyFunction(timezone.now)


class DeadLetterFactory(factory.django.DjangoModelFactory):
    """An order message the consumer could not use."""

    class Meta:
        model = DeadLetter

    source = "order.placed"
    body = "{bad"
    error = "body is not JSON"
