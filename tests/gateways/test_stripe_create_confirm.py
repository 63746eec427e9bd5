"""The Stripe gateway's one-call create and confirm (`create_intent(confirm=True)`), against localstripe."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest

from gateways.base import Declined, IntentResult
from gateways.stripe import StripeGateway
from tests.gateways.conftest import API_KEY, LocalStripe, StubStripe


def _create_confirmed(
    gateway: StripeGateway, payment_method: str, *, key: str = "pay_1:create", capture_method: str = "automatic"
) -> IntentResult:
    return gateway.create_intent(
        amount=2000,
        currency="usd",
        capture_method=capture_method,
        payment_method=payment_method,
        confirm=True,
        metadata={"payment_id": "pay_1"},
        description="Order #1001",
        idempotency_key=key,
    )


def _listed(gateway: StripeGateway) -> list[IntentResult]:
    now = datetime.now(tz=UTC)
    return list(gateway.list_intents(created_gte=now - timedelta(minutes=5), created_lt=now + timedelta(minutes=5)))


def test_create_with_confirm_charges_a_succeeding_card_in_one_call(gateway, localstripe: LocalStripe):
    intent = _create_confirmed(gateway, "pm_card_visa")

    assert intent.reference.startswith("pi_")
    assert (intent.status, intent.amount_received, intent.amount_capturable) == ("succeeded", 2000, 0)
    assert intent.payment_method.startswith("pm_")
    assert intent.metadata == {"payment_id": "pay_1"}
    assert localstripe.charge_count() == 1
    assert gateway.retrieve_intent(reference=intent.reference) == intent


def test_create_with_confirm_authorizes_a_manual_capture_card(gateway, localstripe: LocalStripe):
    # when
    authorized = _create_confirmed(gateway, "pm_card_visa", capture_method="manual")

    # then: authorised, nothing received until the capture
    assert (authorized.status, authorized.capture_method) == ("requires_capture", "manual")
    assert (authorized.amount_capturable, authorized.amount_received) == (2000, 0)
    captured = gateway.capture_intent(reference=authorized.reference, amount=None, idempotency_key="pay_1:capture")
    assert (captured.status, captured.amount_received) == ("succeeded", 2000)
    assert localstripe.charge_count() == 1


@pytest.mark.parametrize(
    ("payment_method", "code", "message"),
    [
        ("pm_card_chargeDeclined", "card_declined", "Your card was declined."),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds", "Your card has insufficient funds."),
    ],
)
def test_declined_create_with_confirm_raises_declined_with_the_created_intent(gateway, payment_method, code, message):
    # when
    with pytest.raises(Declined) as raised:
        _create_confirmed(gateway, payment_method)

    # then: the caller learns the intent's reference from the decline
    assert (raised.value.code, raised.value.message) == (code, message)
    declined = raised.value.intent
    assert declined is not None
    assert declined.reference.startswith("pi_")
    assert declined.status == "requires_payment_method"
    assert (declined.failure_code, declined.failure_message) == (code, message)
    assert (declined.amount_received, declined.amount_capturable) == (0, 0)
    assert gateway.retrieve_intent(reference=declined.reference) == declined
    assert [intent.reference for intent in _listed(gateway)] == [declined.reference]


def test_declined_create_with_confirm_can_be_confirmed_again_with_another_card(gateway):
    with pytest.raises(Declined) as raised:
        _create_confirmed(gateway, "pm_card_chargeDeclined")
    assert raised.value.intent is not None

    confirmed = gateway.confirm_intent(
        reference=raised.value.intent.reference, payment_method="pm_card_visa", idempotency_key="pay_1:confirm:2"
    )

    assert (confirmed.status, confirmed.amount_received) == ("succeeded", 2000)


def test_a_declined_create_with_confirm_is_replayed_with_the_same_intent(gateway, localstripe: LocalStripe):
    references = set()
    for _ in range(2):
        with pytest.raises(Declined) as raised:
            _create_confirmed(gateway, "pm_card_chargeDeclined")
        assert raised.value.intent is not None
        references.add(raised.value.intent.reference)

    assert len(references) == 1
    assert [intent.reference for intent in _listed(gateway)] == list(references)
    assert localstripe.charge_count() == 1


def test_create_with_confirm_twice_with_the_same_key_charges_once(gateway, localstripe: LocalStripe):
    first = _create_confirmed(gateway, "pm_card_visa")
    second = _create_confirmed(gateway, "pm_card_visa")

    assert second == first
    assert [intent.reference for intent in _listed(gateway)] == [first.reference]
    assert localstripe.charge_count() == 1


def test_create_with_confirm_and_three_d_secure_is_requires_action_and_completes(gateway, localstripe: LocalStripe):
    # when
    pending = _create_confirmed(gateway, "pm_card_threeDSecure2Required")
    localstripe.authenticate(pending.reference, success=True)

    # then
    assert (pending.status, pending.amount_received) == ("requires_action", 0)
    completed = gateway.retrieve_intent(reference=pending.reference)
    assert (completed.status, completed.amount_received) == ("succeeded", 2000)


def test_create_with_confirm_sends_confirm_in_the_create_request(stub_stripe: StubStripe):
    # given: Stripe answers with the intent confirmed
    gateway = StripeGateway(api_key=API_KEY, api_base=stub_stripe.url, timeout=5.0)
    body = {"id": "pi_1", "object": "payment_intent", "amount": 2000, "currency": "usd", "status": "succeeded"}
    stub_stripe.body = body | {"capture_method": "automatic", "payment_method": "pm_1"}

    # when
    intent = _create_confirmed(gateway, "pm_1")

    # then: one request, to create, carrying confirm and the payment method
    assert (intent.reference, intent.status) == ("pi_1", "succeeded")
    assert [(method, path) for method, path, _ in stub_stripe.requests] == [("POST", "/v1/payment_intents")]
    sent = parse_qs(stub_stripe.bodies[0])
    assert (sent["confirm"], sent["payment_method"], sent["amount"]) == (["true"], ["pm_1"], ["2000"])


def test_create_without_confirm_does_not_confirm(stub_stripe: StubStripe):
    gateway = StripeGateway(api_key=API_KEY, api_base=stub_stripe.url, timeout=5.0)
    stub_stripe.body = {"id": "pi_1", "object": "payment_intent", "amount": 2000, "currency": "usd"}
    stub_stripe.body |= {"status": "requires_confirmation"}

    gateway.create_intent(
        amount=2000,
        currency="usd",
        capture_method="automatic",
        payment_method="pm_1",
        metadata={},
        description="",
        idempotency_key="k",
    )

    assert "confirm" not in parse_qs(stub_stripe.bodies[0])


def test_a_failed_attempt_answered_with_200_is_declined_too(stub_stripe: StubStripe):
    # given: Stripe can answer a failed attempt with a 200 and the intent back in requires_payment_method
    gateway = StripeGateway(api_key=API_KEY, api_base=stub_stripe.url, timeout=5.0)
    error = {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds", "message": "No."}
    stub_stripe.body = {
        "id": "pi_1",
        "object": "payment_intent",
        "amount": 2000,
        "currency": "usd",
        "status": "requires_payment_method",
        "last_payment_error": error,
    }

    # when
    with pytest.raises(Declined) as raised:
        _create_confirmed(gateway, "pm_1")

    # then
    assert (raised.value.code, raised.value.message) == ("insufficient_funds", "No.")
    assert raised.value.intent is not None
    assert (raised.value.intent.reference, raised.value.intent.status) == ("pi_1", "requires_payment_method")
