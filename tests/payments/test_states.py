"""The payment state machine: the transition table, the one writer of `status`, and invariants under random use."""

import itertools

import pytest
from django.core.cache import cache
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import User
from events.models import Event
from gateways.base import IntentResult
from gateways.simulator import SimulatorGateway
from payments import states
from payments.errors import (
    AmountTooLarge,
    CardDeclined,
    GatewayRejected,
    GatewayTimeoutError,
    PaymentBlocked,
    PaymentInReview,
    PaymentUnexpectedState,
)
from payments.locks import lock_payment
from payments.models import ChangeSource, Payment, PaymentStatusChange
from payments.money import MAX_AMOUNT
from payments.services import (
    payment_apply_intent,
    payment_cancel,
    payment_capture,
    payment_confirm,
    payment_create,
    payment_status_change,
    payment_sync,
)
from payments.states import InvalidTransition, PaymentStatus
from tests.accounts.factories import StaffUserFactory

ALL_STATUSES = [status.value for status in PaymentStatus]

# Written out by hand from API.md's natural order, not derived from states.TRANSITIONS.
EXPECTED_ALLOWED = {
    ("requires_payment_method", "requires_confirmation"),
    ("requires_payment_method", "requires_action"),
    ("requires_payment_method", "processing"),
    ("requires_payment_method", "requires_capture"),
    ("requires_payment_method", "succeeded"),
    ("requires_payment_method", "failed"),
    ("requires_payment_method", "canceled"),
    ("requires_confirmation", "requires_action"),
    ("requires_confirmation", "processing"),
    ("requires_confirmation", "requires_capture"),
    ("requires_confirmation", "succeeded"),
    ("requires_confirmation", "failed"),
    ("requires_confirmation", "canceled"),
    ("requires_action", "processing"),
    ("requires_action", "requires_capture"),
    ("requires_action", "succeeded"),
    ("requires_action", "failed"),
    ("requires_action", "canceled"),
    ("processing", "requires_action"),
    ("processing", "requires_capture"),
    ("processing", "succeeded"),
    ("processing", "failed"),
    ("processing", "canceled"),
    ("requires_capture", "succeeded"),
    ("requires_capture", "failed"),
    ("requires_capture", "canceled"),
    ("succeeded", "partially_refunded"),
    ("succeeded", "refunded"),
    ("partially_refunded", "partially_refunded"),
    ("partially_refunded", "refunded"),
}
TERMINAL_STATUSES = ["refunded", "canceled", "failed"]
CAPTURED_STATUSES = {"succeeded", "partially_refunded", "refunded"}


@pytest.fixture
def staff(db) -> User:
    return StaffUserFactory()


def _history(payment: Payment) -> list[tuple[str, str]]:
    return list(payment.status_changes.order_by("id").values_list("from_status", "to_status"))


# --- the table ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("from_status", "to_status"), list(itertools.product(ALL_STATUSES, ALL_STATUSES)))
def test_check_transition_allows_exactly_the_table(from_status, to_status):
    if (from_status, to_status) in EXPECTED_ALLOWED:
        states.check_transition(from_status, to_status)  # does not raise
        assert states.can_transition(from_status, to_status) is True
    else:
        with pytest.raises(InvalidTransition) as excinfo:
            states.check_transition(from_status, to_status)
        assert (excinfo.value.from_status, excinfo.value.to_status) == (from_status, to_status)
        assert states.can_transition(from_status, to_status) is False


@pytest.mark.parametrize("terminal", TERMINAL_STATUSES)
def test_terminal_statuses_have_no_exits(terminal):
    for to_status in ALL_STATUSES:
        with pytest.raises(InvalidTransition):
            states.check_transition(terminal, to_status)


def test_terminal_set_is_refunded_canceled_failed():
    assert set(states.TERMINAL) == set(TERMINAL_STATUSES)


def test_unknown_status_has_no_exits():
    with pytest.raises(InvalidTransition):
        states.check_transition("paid", "succeeded")


# --- the status writer ---------------------------------------------------------------------------
def _move(payment_id, to_status, **kwargs):
    """Move a payment the way every service does: under its row lock, through the one status writer."""
    with transaction.atomic():
        return payment_status_change(lock_payment(payment_id), to_status, **kwargs)


@pytest.mark.parametrize(
    ("to_status", "event_type"),
    [
        ("requires_confirmation", "payment.initiated"),
        ("requires_action", "payment.requires_action"),
        ("processing", "payment.processing"),
        ("requires_capture", "payment.authorized"),
        ("succeeded", "payment.captured"),
        ("failed", "payment.failed"),
        ("canceled", "payment.canceled"),
    ],
)
def test_status_writer_writes_one_history_row_and_one_event(shop, staff, to_status, event_type):
    # given a payment just created, with its creation row and event
    payment = payment_create(client=shop, amount=2000, currency="usd", customer_id="cus_1")
    change_ids = set(PaymentStatusChange.objects.values_list("id", flat=True))
    event_ids = set(Event.objects.values_list("sequence", flat=True))

    # when
    moved = _move(payment.pk, to_status, source=ChangeSource.ADMIN, actor=staff, reason="ticket 17")

    # then
    new_changes = PaymentStatusChange.objects.exclude(id__in=change_ids)
    assert [(c.payment_id, c.from_status, c.to_status, c.source, c.actor_id, c.reason) for c in new_changes] == [
        (payment.pk, "requires_payment_method", to_status, "admin", staff.pk, "ticket 17")
    ]
    new_events = Event.objects.exclude(sequence__in=event_ids)
    assert [(e.subject_id, e.type, e.data["id"], e.data["status"]) for e in new_events] == [
        (payment.public_id, event_type, payment.public_id, to_status)
    ]
    assert moved.status == to_status
    assert Payment.objects.get(pk=payment.pk).status == to_status


def test_status_writer_applies_changes_and_an_explicit_event_type(shop, staff):
    # given
    payment = payment_create(client=shop, amount=2000, currency="usd", customer_id="cus_1")

    # when
    _move(
        payment.pk,
        "failed",
        source=ChangeSource.ADMIN,
        actor=staff,
        reason="fraud confirmed",
        event_type="payment.status_overridden",
        failure_code="fraudulent",
    )

    # then
    stored = Payment.objects.get(pk=payment.pk)
    assert (stored.status, stored.failure_code) == ("failed", "fraudulent")
    event = Event.objects.filter(subject_id=payment.public_id).order_by("-sequence").first()
    assert (event.type, event.data["status"], event.data["failure_code"]) == (
        "payment.status_overridden",
        "failed",
        "fraudulent",
    )


def test_forbidden_status_change_writes_nothing(shop, staff):
    # given a canceled payment
    payment = payment_create(client=shop, amount=2000, currency="usd", customer_id="cus_1")
    payment_cancel(payment=payment)
    change_count = PaymentStatusChange.objects.count()
    event_count = Event.objects.count()

    # when
    with pytest.raises(InvalidTransition):
        _move(
            payment.pk,
            "succeeded",
            source=ChangeSource.ADMIN,
            actor=staff,
            reason="oops",
            amount_received=2000,
        )

    # then
    stored = Payment.objects.get(pk=payment.pk)
    assert (stored.status, stored.amount_received) == ("canceled", 0)
    assert PaymentStatusChange.objects.count() == change_count
    assert Event.objects.count() == event_count


# --- invariants under random use of the services --------------------------------------------------
TOKENS = [
    "pm_card_visa",
    "pm_card_mastercard",
    "pm_card_chargeDeclined",
    "pm_card_chargeDeclinedInsufficientFunds",
    "pm_card_chargeDeclinedExpiredCard",
    "pm_card_threeDSecure2Required",
    "pm_card_no_such_token",
    "",
]
AMOUNTS = {
    "usd": st.integers(min_value=50, max_value=MAX_AMOUNT),
    "jpy": st.integers(min_value=50, max_value=MAX_AMOUNT),
    "kwd": st.integers(min_value=1, max_value=MAX_AMOUNT // 10).map(lambda n: n * 10),
}
STEP = {"usd": 1, "jpy": 1, "kwd": 10}
EXPECTED_ERRORS = (
    PaymentUnexpectedState,
    PaymentInReview,
    PaymentBlocked,
    CardDeclined,
    AmountTooLarge,
    GatewayRejected,
)


def _assert_invariants(payment_id: int, terminal_seen: dict[int, tuple[str, int]]) -> None:
    payment = Payment.objects.get(pk=payment_id)
    assert 0 <= payment.amount_refunded <= payment.amount_received <= payment.amount
    assert 0 <= payment.amount_capturable <= payment.amount
    assert payment.status in PaymentStatus.values
    if payment.status != "requires_capture":
        assert payment.amount_capturable == 0
    if payment.status not in CAPTURED_STATUSES:
        assert payment.amount_received == 0

    history = _history(payment)
    assert history[0][0] == ""
    for (_, previous_to), (current_from, _) in itertools.pairwise(history):
        assert current_from == previous_to
    assert history[-1][1] == payment.status
    for from_status, to_status in history[1:]:
        assert (from_status, to_status) in EXPECTED_ALLOWED
    # one event per status change; review_opened/closed (risk rules) are events without a status change
    assert Event.objects.filter(subject_id=payment.public_id).exclude(
        type__startswith="payment.review_"
    ).count() == len(history)

    # Without injected faults every gateway call finishes inside the service call.
    assert payment.pending_operation == ""

    if payment_id in terminal_seen:
        assert (payment.status, len(history)) == terminal_seen[payment_id]
    elif payment.status in TERMINAL_STATUSES:
        terminal_seen[payment_id] = (payment.status, len(history))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_service_calls_keep_the_payment_invariants(shop, data):
    # Every example starts from the same database and gateway state (rolled back and cleared after it),
    # so what an example draws never depends on the examples before it (velocity counts, simulator state).
    with transaction.atomic():
        try:
            cache.clear()
            _random_service_calls(shop, data)
        finally:
            transaction.set_rollback(True)


def _random_service_calls(client: User, data: st.DataObject) -> None:
    simulator = SimulatorGateway()
    payment_ids: list[int] = []
    terminal_seen: dict[int, tuple[str, int]] = {}

    for _ in range(data.draw(st.integers(min_value=1, max_value=10), label="steps")):
        action = data.draw(
            st.sampled_from(["create", "confirm", "capture", "cancel", "authenticate"])
            if payment_ids
            else st.just("create"),
            label="action",
        )
        candidates = payment_ids
        if action == "capture":  # aim at authorized payments when there are any, so partial amounts get exercised
            authorized = list(
                Payment.objects.filter(id__in=payment_ids, status="requires_capture")
                .order_by("id")
                .values_list("id", flat=True)
            )
            candidates = authorized or payment_ids
        target = data.draw(st.sampled_from(candidates), label="payment") if action != "create" else None
        before = Payment.objects.get(pk=target) if target else None
        try:
            if action == "create":
                currency = data.draw(st.sampled_from(sorted(AMOUNTS)), label="currency")
                amount = data.draw(AMOUNTS[currency], label="amount")
                token = data.draw(st.sampled_from(TOKENS), label="token")
                confirm = bool(token) and data.draw(st.booleans(), label="confirm")
                capture_method = data.draw(st.sampled_from(["automatic", "manual"]), label="capture_method")
                last_id = Payment.objects.order_by("-id").values_list("id", flat=True).first() or 0
                try:
                    result = payment_create(
                        client=client,
                        amount=amount,
                        currency=currency,
                        customer_id="cus_random",
                        capture_method=capture_method,
                        payment_method=token,
                        confirm=confirm,
                    )
                finally:
                    payment_ids.extend(
                        Payment.objects.filter(client=client, id__gt=last_id)
                        .order_by("id")
                        .values_list("id", flat=True)
                    )
                held = result.risk_assessment.decision == "review"  # the risk rules force manual capture
                expected_method = "manual" if held else capture_method
                assert (result.amount, result.currency, result.capture_method) == (amount, currency, expected_method)
            elif action == "confirm":
                token = data.draw(st.sampled_from(TOKENS), label="token")
                result = payment_confirm(payment=before, payment_method=token)
                assert result.status in {"succeeded", "requires_capture", "requires_action", "processing"}
            elif action == "capture":
                step = STEP[before.currency]
                capturable = before.amount_capturable
                choices = [None, capturable + step]
                if capturable >= step:
                    choices.append(data.draw(st.integers(1, capturable // step), label="units") * step)
                amount = data.draw(st.sampled_from(choices), label="capture_amount")
                result = payment_capture(payment=before, amount=amount)
                assert (result.status, result.amount_capturable) == ("succeeded", 0)
                assert result.amount_received == (capturable if amount is None else amount)
            elif action == "cancel":
                reason = data.draw(st.sampled_from(["", "requested_by_customer", "duplicate"]), label="reason")
                result = payment_cancel(payment=before, reason=reason)
                assert (result.status, result.amount_capturable, result.cancellation_reason) == (
                    "canceled",
                    0,
                    reason,
                )
            else:  # the customer completes (or fails) 3-D Secure, then we sync with the gateway
                if before.status != "requires_action":
                    continue
                succeed = data.draw(st.booleans(), label="authenticated")
                simulator.complete_action(reference=before.gateway_reference, succeed=succeed)
                result = payment_sync(payment_id=before.pk)
                if not succeed:
                    expected = "failed"
                elif before.capture_method == "manual":
                    expected = "requires_capture"
                else:
                    expected = "succeeded"
                assert result.status == expected
            assert result.pending_operation == ""
        except EXPECTED_ERRORS:
            if before is not None and before.status in TERMINAL_STATUSES:
                assert Payment.objects.get(pk=before.pk).status == before.status

        for payment_id in payment_ids:
            _assert_invariants(payment_id, terminal_seen)


# --- applying a gateway result --------------------------------------------------------------------
def _authorized(shop: User) -> Payment:
    """A 20.00 payment confirmed for a manual capture: `requires_capture`."""
    return payment_create(
        client=shop,
        amount=2000,
        currency="usd",
        customer_id="cus_1",
        capture_method="manual",
        payment_method="pm_card_visa",
        confirm=True,
    )


def _captured(payment: Payment, **fields: int) -> IntentResult:
    """The gateway's intent for `payment` once captured (`amount_received` only when given)."""
    return IntentResult(
        reference=payment.gateway_reference or "",
        status="succeeded",
        amount=2000,
        currency="usd",
        capture_method="manual",
        **fields,
    )


def test_capture_result_without_amount_received_records_the_amount_asked_for(shop):
    # given an authorized 20.00 payment whose partial capture of 15.00 was recorded but not answered
    payment = _authorized(shop)
    SimulatorGateway.inject_fault("capture_intent", "timeout_before")
    with pytest.raises(GatewayTimeoutError):
        payment_capture(payment=payment, amount=1500)
    recorded = Payment.objects.get(pk=payment.pk)
    assert (recorded.pending_operation, recorded.pending_operation_amount) == ("capture", 1500)

    # when the worker applies a gateway answer that omits amount_received (as localstripe's does)
    settled = payment_apply_intent(
        payment_id=payment.pk, intent=_captured(payment), source=ChangeSource.WORKER, clear_operation="capture"
    )

    # then the amount recorded is the 15.00 that was captured, not the 20.00 authorized
    stored = Payment.objects.get(pk=payment.pk)
    assert (settled.status, settled.amount_received) == ("succeeded", 1500)
    assert (stored.amount_received, stored.amount_capturable, stored.pending_operation) == (1500, 0, "")


@pytest.mark.django_db(transaction=True)
def test_an_intent_applied_to_the_locked_copy_changes_it_in_the_callers_transaction_and_nowhere_else(shop):
    # given an authorized payment, locked by a caller (a webhook) in its transaction
    payment = _authorized(shop)
    captured = _captured(payment, amount_received=2000)
    read = Payment.objects.get(pk=payment.pk)

    # when the intent is applied to that copy, and the caller's transaction then fails
    settled: list[Payment] = []

    def webhook_failing_after() -> None:
        with transaction.atomic():
            locked = lock_payment(payment.pk)
            settled.append(
                payment_apply_intent(payment_id=payment.pk, intent=captured, source=ChangeSource.WEBHOOK, locked=locked)
            )
            raise RuntimeError("the caller fails after")

    with pytest.raises(RuntimeError):
        webhook_failing_after()
    assert settled[0].status == "succeeded"

    # then nothing of it was kept (it ran in that transaction), and without a transaction it is refused
    stored = Payment.objects.get(pk=payment.pk)
    assert (stored.status, stored.amount_received) == ("requires_capture", 0)
    assert not Event.objects.filter(subject_id=payment.public_id, type="payment.captured").exists()
    with pytest.raises(transaction.TransactionManagementError):
        payment_apply_intent(payment_id=payment.pk, intent=captured, source=ChangeSource.WEBHOOK, locked=read)
    assert Payment.objects.get(pk=payment.pk).status == "requires_capture"
