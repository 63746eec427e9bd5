"""The Stripe gateway against localstripe (extended by scripts/localstripe_server.py) and a few stub servers."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from gateways.base import Declined, GatewayTimeout, GatewayUnavailable, IntentResult, Permanent, Retryable
from gateways.stripe import StripeGateway
from tests.gateways.conftest import API_KEY, LocalStripe, StubStripe, free_port


def _create(gateway: StripeGateway, key: str, *, capture_method: str = "automatic", **overrides) -> IntentResult:
    params = {
        "amount": 2000,
        "currency": "usd",
        "capture_method": capture_method,
        "payment_method": "",
        "metadata": {"payment_id": "pay_1"},
        "description": "Order #1001",
        "idempotency_key": key,
    }
    return gateway.create_intent(**(params | overrides))


def _authorized(gateway: StripeGateway, key: str = "pay_1") -> IntentResult:
    intent = _create(gateway, f"{key}:create", capture_method="manual", payment_method="pm_card_visa")
    return gateway.confirm_intent(reference=intent.reference, payment_method="", idempotency_key=f"{key}:confirm")


def _captured(gateway: StripeGateway, key: str = "pay_1", amount: int = 2000) -> IntentResult:
    intent = _create(gateway, f"{key}:create", amount=amount)
    return gateway.confirm_intent(
        reference=intent.reference, payment_method="pm_card_visa", idempotency_key=f"{key}:confirm"
    )


def _window() -> dict[str, datetime]:
    now = datetime.now(tz=UTC)
    return {"created_gte": now - timedelta(minutes=5), "created_lt": now + timedelta(minutes=5)}


# --- payment intents ---------------------------------------------------------------------------------------
def test_create_intent_without_payment_method_waits_for_one(gateway):
    # given
    before = datetime.now(tz=UTC).replace(microsecond=0)

    # when
    intent = _create(gateway, "pay_1:create", currency="USD")

    # then
    assert intent.reference.startswith("pi_")
    assert intent.status == "requires_payment_method"
    assert (intent.amount, intent.currency, intent.capture_method) == (2000, "usd", "automatic")
    assert (intent.amount_capturable, intent.amount_received) == (0, 0)
    assert intent.client_secret.startswith(f"{intent.reference}_secret_")
    assert intent.payment_method == ""
    assert (intent.failure_code, intent.failure_message) == ("", "")
    assert intent.metadata == {"payment_id": "pay_1"}
    assert intent.created_at is not None
    assert before <= intent.created_at <= datetime.now(tz=UTC)


def test_create_manual_intent_with_payment_method_waits_for_confirmation(gateway):
    intent = _create(gateway, "pay_1:create", capture_method="manual", payment_method="pm_card_visa")

    assert intent.status == "requires_confirmation"
    assert intent.capture_method == "manual"
    assert intent.payment_method.startswith("pm_")


def test_confirm_automatic_intent_with_payment_method_captures_it(gateway):
    # given
    intent = _create(gateway, "pay_1:create")

    # when
    confirmed = gateway.confirm_intent(
        reference=intent.reference, payment_method="pm_card_visa", idempotency_key="pay_1:confirm"
    )

    # then
    assert confirmed.reference == intent.reference
    assert confirmed.status == "succeeded"
    assert (confirmed.amount_received, confirmed.amount_capturable) == (2000, 0)
    assert confirmed.payment_method.startswith("pm_")


def test_confirm_manual_intent_authorizes_it(gateway, localstripe: LocalStripe):
    authorized = _authorized(gateway)

    assert authorized.status == "requires_capture"
    assert (authorized.amount_capturable, authorized.amount_received) == (2000, 0)
    assert localstripe.charge_count() == 1


def test_capture_whole_authorization(gateway):
    # given
    authorized = _authorized(gateway)

    # when
    captured = gateway.capture_intent(reference=authorized.reference, amount=None, idempotency_key="pay_1:capture")

    # then
    assert captured.status == "succeeded"
    assert (captured.amount_received, captured.amount_capturable) == (2000, 0)


def test_partial_capture_receives_only_the_captured_amount(gateway):
    # given
    authorized = _authorized(gateway)

    # when
    captured = gateway.capture_intent(reference=authorized.reference, amount=1500, idempotency_key="pay_1:capture")

    # then
    assert captured.status == "succeeded"
    assert (captured.amount, captured.amount_received, captured.amount_capturable) == (2000, 1500, 0)
    assert gateway.retrieve_intent(reference=authorized.reference) == captured


def test_capture_more_than_authorized_is_permanent_and_captures_nothing(gateway):
    authorized = _authorized(gateway)

    with pytest.raises(Permanent):
        gateway.capture_intent(reference=authorized.reference, amount=2001, idempotency_key="pay_1:capture")

    assert gateway.retrieve_intent(reference=authorized.reference) == authorized


def test_cancel_authorized_intent_releases_it(gateway):
    # given
    authorized = _authorized(gateway)

    # when
    canceled = gateway.cancel_intent(
        reference=authorized.reference, reason="requested_by_customer", idempotency_key="pay_1:cancel"
    )

    # then
    assert canceled.status == "canceled"
    assert (canceled.amount_capturable, canceled.amount_received) == (0, 0)


def test_cancel_succeeded_intent_is_permanent(gateway):
    captured = _captured(gateway)

    with pytest.raises(Permanent) as raised:
        gateway.cancel_intent(reference=captured.reference, reason="", idempotency_key="pay_1:cancel")

    assert raised.value.code == "payment_intent_unexpected_state"
    assert gateway.retrieve_intent(reference=captured.reference).status == "succeeded"


def test_retrieve_intent_returns_what_the_last_call_returned(gateway):
    authorized = _authorized(gateway)

    assert gateway.retrieve_intent(reference=authorized.reference) == authorized


def test_retrieve_unknown_intent_is_permanent(gateway):
    with pytest.raises(Permanent):
        gateway.retrieve_intent(reference="pi_doesnotexist")


# --- declines and 3-D Secure ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("payment_method", "code", "message"),
    [
        ("pm_card_chargeDeclined", "card_declined", "Your card was declined."),
        ("pm_card_chargeCustomerFail", "card_declined", "Your card was declined."),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds", "Your card has insufficient funds."),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "Your card has expired."),
    ],
)
def test_declined_confirm_raises_declined_with_the_code_and_moves_no_money(gateway, payment_method, code, message):
    # given
    intent = _create(gateway, "pay_1:create")

    # when
    with pytest.raises(Declined) as raised:
        gateway.confirm_intent(reference=intent.reference, payment_method=payment_method, idempotency_key="pay_1:c")

    # then
    assert (raised.value.code, raised.value.message) == (code, message)
    declined = raised.value.intent
    assert declined is not None
    assert (declined.reference, declined.status) == (intent.reference, "requires_payment_method")
    assert (declined.failure_code, declined.failure_message) == (code, message)
    assert (declined.amount_received, declined.amount_capturable) == (0, 0)
    assert gateway.retrieve_intent(reference=intent.reference) == declined


def test_declined_intent_can_be_confirmed_again_with_another_card(gateway):
    # given
    intent = _create(gateway, "pay_1:create")
    with pytest.raises(Declined):
        gateway.confirm_intent(
            reference=intent.reference, payment_method="pm_card_chargeDeclined", idempotency_key="pay_1:confirm:1"
        )

    # when
    confirmed = gateway.confirm_intent(
        reference=intent.reference, payment_method="pm_card_visa", idempotency_key="pay_1:confirm:2"
    )

    # then
    assert (confirmed.status, confirmed.amount_received) == ("succeeded", 2000)


def test_three_d_secure_is_requires_action_not_an_error_and_completes(gateway, localstripe: LocalStripe):
    # given
    intent = _create(gateway, "pay_1:create")

    # when
    pending = gateway.confirm_intent(
        reference=intent.reference, payment_method="pm_card_threeDSecure2Required", idempotency_key="pay_1:confirm"
    )
    localstripe.authenticate(intent.reference, success=True)

    # then
    assert (pending.status, pending.amount_received) == ("requires_action", 0)
    completed = gateway.retrieve_intent(reference=intent.reference)
    assert (completed.status, completed.amount_received) == ("succeeded", 2000)


def test_failed_three_d_secure_with_raw_test_card_leaves_intent_unpaid(gateway, localstripe: LocalStripe):
    # given
    intent = _create(gateway, "pay_1:create", capture_method="manual")
    card = localstripe.card("4000002500003155")
    pending = gateway.confirm_intent(reference=intent.reference, payment_method=card, idempotency_key="pay_1:confirm")

    # when
    localstripe.authenticate(intent.reference, success=False)

    # then
    assert pending.status == "requires_action"
    failed = gateway.retrieve_intent(reference=intent.reference)
    assert failed.status == "requires_payment_method"
    assert failed.failure_code == "payment_intent_authentication_failure"
    assert (failed.amount_capturable, failed.amount_received) == (0, 0)
    assert localstripe.charge_count() == 0


# --- refunds -------------------------------------------------------------------------------------------------
def test_partial_refund_is_created_and_retrieved(gateway):
    # given
    captured = _captured(gateway)

    # when
    refund = gateway.create_refund(
        intent_reference=captured.reference,
        amount=500,
        reason="requested_by_customer",
        metadata={"refund_id": "re_local_1"},
        idempotency_key="re_local_1:create",
    )

    # then
    assert refund.reference.startswith("re_")
    assert (refund.intent_reference, refund.status, refund.amount, refund.currency) == (
        captured.reference,
        "succeeded",
        500,
        "usd",
    )
    assert refund.metadata == {"refund_id": "re_local_1"}
    assert refund.failure_reason == ""
    assert refund.created_at is not None
    assert gateway.retrieve_refund(reference=refund.reference) == refund


def test_refund_with_unknown_reason_is_permanent_and_refunds_nothing(gateway):
    captured = _captured(gateway)

    with pytest.raises(Permanent):
        gateway.create_refund(
            intent_reference=captured.reference, amount=500, reason="changed_mind", metadata={}, idempotency_key="r1"
        )

    assert list(gateway.list_refunds(**_window())) == []


# --- listing -------------------------------------------------------------------------------------------------
def test_list_intents_pages_through_every_intent_in_the_window(gateway):
    # given: more intents than one page (the gateway fixture asks for pages of 5)
    created = {_create(gateway, f"pay_{number}:create").reference for number in range(12)}

    # when
    listed = [intent.reference for intent in gateway.list_intents(**_window())]

    # then
    assert len(listed) == 12
    assert set(listed) == created


def test_list_intents_outside_the_window_is_empty(gateway):
    _create(gateway, "pay_1:create")
    now = datetime.now(tz=UTC)

    assert list(gateway.list_intents(created_gte=now - timedelta(hours=2), created_lt=now - timedelta(hours=1))) == []
    assert list(gateway.list_intents(created_gte=now + timedelta(hours=1), created_lt=now + timedelta(hours=2))) == []


def test_list_refunds_pages_through_every_refund_in_the_window(gateway):
    # given
    captured = _captured(gateway, amount=1200)
    created = {
        gateway.create_refund(
            intent_reference=captured.reference, amount=100, reason="", metadata={}, idempotency_key=f"re_{n}"
        ).reference
        for n in range(12)
    }

    # when
    listed = list(gateway.list_refunds(**_window()))

    # then
    assert len(listed) == 12
    assert {refund.reference for refund in listed} == created
    assert {(refund.intent_reference, refund.amount) for refund in listed} == {(captured.reference, 100)}


# --- idempotency ---------------------------------------------------------------------------------------------
def test_create_twice_with_the_same_key_creates_one_intent(gateway):
    first = _create(gateway, "pay_1:create")
    second = _create(gateway, "pay_1:create")

    assert second == first
    assert [intent.reference for intent in gateway.list_intents(**_window())] == [first.reference]


def test_confirm_twice_with_the_same_key_charges_once(gateway, localstripe: LocalStripe):
    # given
    intent = _create(gateway, "pay_1:create")

    # when
    first = gateway.confirm_intent(reference=intent.reference, payment_method="pm_card_visa", idempotency_key="k1")
    second = gateway.confirm_intent(reference=intent.reference, payment_method="pm_card_visa", idempotency_key="k1")

    # then
    assert second == first
    assert first.status == "succeeded"
    assert localstripe.charge_count() == 1


def test_a_decline_is_replayed_for_the_same_key(gateway, localstripe: LocalStripe):
    intent = _create(gateway, "pay_1:create")

    for _ in range(2):
        with pytest.raises(Declined) as raised:
            gateway.confirm_intent(
                reference=intent.reference, payment_method="pm_card_chargeDeclined", idempotency_key="k1"
            )
        assert raised.value.code == "card_declined"

    assert localstripe.charge_count() == 1


def test_capture_twice_with_the_same_key_captures_once(gateway):
    # given
    authorized = _authorized(gateway)

    # when
    first = gateway.capture_intent(reference=authorized.reference, amount=1500, idempotency_key="pay_1:capture")
    second = gateway.capture_intent(reference=authorized.reference, amount=1500, idempotency_key="pay_1:capture")

    # then: the repeat is the first answer; a new key meets the real state
    assert second == first
    assert (first.status, first.amount_received) == ("succeeded", 1500)
    with pytest.raises(Permanent) as raised:
        gateway.capture_intent(reference=authorized.reference, amount=1500, idempotency_key="pay_1:capture:again")
    assert raised.value.code == "payment_intent_unexpected_state"


def test_refund_twice_with_the_same_key_refunds_once(gateway):
    # given
    captured = _captured(gateway)
    refund = {"intent_reference": captured.reference, "amount": 500, "reason": "", "metadata": {}}

    # when
    first = gateway.create_refund(**refund, idempotency_key="re_1:create")
    second = gateway.create_refund(**refund, idempotency_key="re_1:create")

    # then
    assert second == first
    assert [listed.reference for listed in gateway.list_refunds(**_window())] == [first.reference]


def test_same_key_with_other_parameters_is_permanent(gateway):
    _create(gateway, "pay_1:create")

    with pytest.raises(Permanent) as raised:
        _create(gateway, "pay_1:create", amount=3000)

    assert raised.value.code == "idempotency_error"
    assert len(list(gateway.list_intents(**_window()))) == 1


def test_every_mutating_call_sends_the_callers_idempotency_key(stub_stripe: StubStripe):
    # given
    gateway = StripeGateway(api_key=API_KEY, api_base=stub_stripe.url, timeout=5.0)
    stub_stripe.body = {"id": "pi_1", "object": "payment_intent", "amount": 100, "currency": "usd", "status": "x"}

    # when
    _create(gateway, "k:create")
    gateway.confirm_intent(reference="pi_1", payment_method="pm_card_visa", idempotency_key="k:confirm")
    gateway.capture_intent(reference="pi_1", amount=None, idempotency_key="k:capture")
    gateway.cancel_intent(reference="pi_1", reason="duplicate", idempotency_key="k:cancel")
    gateway.create_refund(intent_reference="pi_1", amount=1, reason="", metadata={}, idempotency_key="k:refund")

    # then
    assert [(method, path, headers["Idempotency-Key"]) for method, path, headers in stub_stripe.requests] == [
        ("POST", "/v1/payment_intents", "k:create"),
        ("POST", "/v1/payment_intents/pi_1/confirm", "k:confirm"),
        ("POST", "/v1/payment_intents/pi_1/capture", "k:capture"),
        ("POST", "/v1/payment_intents/pi_1/cancel", "k:cancel"),
        ("POST", "/v1/refunds", "k:refund"),
    ]


# --- failures ------------------------------------------------------------------------------------------------
def test_connection_refused_is_gateway_unavailable():
    gateway = StripeGateway(api_key=API_KEY, api_base=f"http://127.0.0.1:{free_port()}", timeout=5.0)

    with pytest.raises(GatewayUnavailable) as raised:
        gateway.retrieve_intent(reference="pi_1")

    assert isinstance(raised.value, Retryable)
    assert not isinstance(raised.value, GatewayTimeout)
    assert raised.value.code == "gateway_unavailable"


def test_no_answer_within_the_timeout_is_gateway_timeout(silent_server: str):
    # given
    gateway = StripeGateway(api_key=API_KEY, api_base=silent_server, timeout=0.5)
    started = time.monotonic()

    # when
    with pytest.raises(GatewayTimeout) as raised:
        _create(gateway, "pay_1:create")

    # then
    assert isinstance(raised.value, Retryable)
    assert raised.value.code == "gateway_timeout"
    assert 0.5 <= time.monotonic() - started < 3


@pytest.mark.parametrize("status", [429, 500, 503])
def test_rate_limit_and_server_errors_are_gateway_unavailable(stub_stripe: StubStripe, status):
    stub_stripe.status = status
    stub_stripe.body = {"error": {"type": "api_error", "message": "Something went wrong on Stripe's end."}}
    gateway = StripeGateway(api_key=API_KEY, api_base=stub_stripe.url, timeout=5.0)

    with pytest.raises(GatewayUnavailable):
        gateway.retrieve_intent(reference="pi_1")

    assert len(stub_stripe.requests) == 1  # no retries inside the SDK


def test_bad_api_key_is_permanent_and_not_echoed(localstripe: LocalStripe):
    # given: localstripe refuses keys that do not start with sk_
    secret = "rk_test_0123456789SecretKeyValue"
    gateway = StripeGateway(api_key=secret, api_base=localstripe.url, timeout=5.0)

    # when
    with pytest.raises(Permanent) as raised:
        _create(gateway, "pay_1:create")

    # then
    assert (raised.value.code, raised.value.message) == ("authentication_error", "Stripe rejected the API key.")
    assert secret not in f"{raised.value} {raised.value!r} {raised.value.args}"


def test_api_key_in_a_stripe_error_message_is_masked(stub_stripe: StubStripe):
    # given: Stripe echoes (part of) a bad key in its messages
    stub_stripe.status = 400
    stub_stripe.body = {"error": {"type": "invalid_request_error", "message": f"Invalid API Key provided: {API_KEY}"}}
    gateway = StripeGateway(api_key=API_KEY, api_base=stub_stripe.url, timeout=5.0)

    # when
    with pytest.raises(Permanent) as raised:
        gateway.retrieve_intent(reference="pi_1")

    # then
    assert raised.value.message == "Invalid API Key provided: [redacted]"
    assert API_KEY not in f"{raised.value} {raised.value!r} {raised.value.args}"


def test_from_settings_uses_the_stripe_settings(settings, localstripe: LocalStripe):
    # given
    settings.STRIPE_SECRET_KEY = API_KEY
    settings.STRIPE_API_BASE = localstripe.url
    settings.STRIPE_TIMEOUT_SECONDS = 2.0

    # when
    intent = _create(StripeGateway.from_settings(), "pay_1:create")

    # then
    assert localstripe.client.v1.payment_intents.retrieve(intent.reference).amount == 2000
