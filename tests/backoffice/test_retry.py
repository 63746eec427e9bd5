"""Retry a stuck operation: the payment page's button and the refund changelist's action."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from accounts.models import User
from audit.models import StaffAction
from payments.models import Payment
from refunds.models import Refund
from tests.audit.conftest import logged_in
from tests.payments.factories import PaymentFactory
from tests.refunds.factories import RefundFactory

pytestmark = pytest.mark.django_db

REFUNDS = "/admin/refunds/refund/"


def _retry_url(payment: Payment) -> str:
    return f"/admin/payments/payment/{payment.pk}/retry/"


@pytest.fixture
def stuck_payment(db) -> Payment:
    """A captured payment whose settling with the gateway ran out of retries."""
    return PaymentFactory(succeeded=True, needs_attention=True, last_error="Retryable: timeout")


@pytest.fixture
def enqueued(broker_queue):
    """The retry tasks really sent to the broker (their queue is `gateway`), as (task, kwargs), oldest first."""
    short = {"payments.tasks.settle_payment": "settle_payment", "refunds.tasks.submit_refund": "submit_refund"}
    return lambda: [(short.get(sent.name, sent.name), sent.kwargs) for sent in broker_queue("gateway")]


def _stuck_refund(requested_by: User, **extra) -> Refund:
    """A refund of $10.00 of a $50.00 payment whose submission to the gateway ran out of retries."""
    return RefundFactory(
        payment=PaymentFactory(succeeded=True, amount=5000),
        amount=1000,
        requested_by=requested_by,
        needs_attention=True,
        last_error="Retryable: timeout",
        **extra,
    )


@pytest.fixture
def stuck_refund(agent) -> Refund:
    return _stuck_refund(agent)


def test_payment_page_shows_the_retry_button_to_an_agent_when_stuck(agent, stuck_payment):
    html = logged_in(agent).get(f"/admin/payments/payment/{stuck_payment.pk}/change/").content.decode()

    assert f'action="/admin/payments/payment/{stuck_payment.pk}/retry/"' in html


def test_retry_button_clears_the_flag_enqueues_settle_and_is_audited(
    agent, stuck_payment, enqueued, django_capture_on_commit_callbacks
):
    # when an agent presses "Retry stuck operation"
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in(agent).post(_retry_url(stuck_payment), follow=True)

    # then the flag is cleared, settle_payment is enqueued after commit, the action is audited
    assert response.redirect_chain == [(f"/admin/payments/payment/{stuck_payment.pk}/change/", 302)]
    assert [str(m) for m in response.context["messages"]] == [f"Retry of {stuck_payment.public_id} queued."]
    assert Payment.objects.get(pk=stuck_payment.pk).needs_attention is False
    assert enqueued() == [("settle_payment", {"payment_id": stuck_payment.pk})]
    action = StaffAction.objects.get()
    assert (action.actor, action.action, action.object_type, action.object_id) == (
        agent,
        "retry_stuck_operation",
        "payment",
        stuck_payment.public_id,
    )
    assert action.before == {"needs_attention": True, "pending_operation": ""}
    assert action.after == {"needs_attention": False, "enqueued": "settle_payment"}


def test_retry_of_a_payment_with_nothing_stuck_does_nothing(
    lead, captured, enqueued, django_capture_on_commit_callbacks
):
    payment = captured(2000)

    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in(lead).post(_retry_url(payment), follow=True)

    assert [str(m) for m in response.context["messages"]] == [f"{payment.public_id} has no stuck operation to retry."]
    assert enqueued() == []
    assert not StaffAction.objects.exists()


def test_auditor_can_neither_see_nor_use_the_retry_button(auditor, stuck_payment, enqueued):
    client = logged_in(auditor)

    html = client.get(f"/admin/payments/payment/{stuck_payment.pk}/change/").content.decode()
    response = client.post(_retry_url(stuck_payment))

    assert "/retry/" not in html
    assert response.status_code == 403
    assert Payment.objects.get(pk=stuck_payment.pk).needs_attention is True
    assert enqueued() == []
    assert not StaffAction.objects.exists()


def test_refund_retry_action_resubmits_pending_refunds_and_is_audited(
    lead, stuck_refund, enqueued, django_capture_on_commit_callbacks
):
    # when a lead runs "retry" on the stuck refund
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in(lead).post(
            REFUNDS, {"action": "retry_stuck", ACTION_CHECKBOX_NAME: [stuck_refund.pk], "index": "0"}, follow=True
        )

    # then it is submitted again after commit, unflagged, and audited
    assert [str(m) for m in response.context["messages"]] == ["Retry queued for 1 refund(s); 0 skipped (not pending)."]
    assert Refund.objects.get(pk=stuck_refund.pk).needs_attention is False
    assert enqueued() == [("submit_refund", {"refund_id": stuck_refund.pk})]
    action = StaffAction.objects.get()
    assert (action.actor, action.action, action.object_type, action.object_id) == (
        lead,
        "retry_stuck_operation",
        "refund",
        stuck_refund.public_id,
    )
    assert action.before == {"needs_attention": True, "attempts": 0}


def test_refund_retry_skips_refunds_that_are_no_longer_pending(agent, enqueued, django_capture_on_commit_callbacks):
    # given a refund flagged while pending that has failed since
    stuck_refund = _stuck_refund(agent, failed=True)

    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in(agent).post(
            REFUNDS, {"action": "retry_stuck", ACTION_CHECKBOX_NAME: [stuck_refund.pk], "index": "0"}, follow=True
        )

    assert [str(m) for m in response.context["messages"]] == ["Retry queued for 0 refund(s); 1 skipped (not pending)."]
    assert enqueued() == []
    assert not StaffAction.objects.exists()


def test_auditor_has_no_refund_retry_action(auditor, stuck_refund, enqueued):
    client = logged_in(auditor)

    changelist = client.get(REFUNDS)
    response = client.post(
        REFUNDS, {"action": "retry_stuck", ACTION_CHECKBOX_NAME: [stuck_refund.pk], "index": "0"}, follow=True
    )

    assert "retry_stuck" not in changelist.content.decode()
    assert response.status_code == 200
    assert Refund.objects.get(pk=stuck_refund.pk).needs_attention is True
    assert enqueued() == []
    assert not StaffAction.objects.exists()
