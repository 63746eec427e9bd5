"""Staff refunds and status overrides from the payment page, with four-eyes approval above the limit."""

import pytest
from auditlog.models import LogEntry
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from audit.errors import ApprovalBySelf
from audit.models import ApprovalRequest, ApprovalStatus, StaffAction
from audit.services import approval_request_approve, audit_verify
from events.models import Event
from payments.models import Payment, PaymentStatusChange
from payments.services import payment_override_request
from refunds.models import Refund
from refunds.services import staff_refund_request
from tests.audit.conftest import logged_in

pytestmark = pytest.mark.django_db

APPROVALS = "/admin/audit/approvalrequest/"


def _refund_url(payment: Payment) -> str:
    return f"/admin/payments/payment/{payment.pk}/refund/"


def _approve(client, request: ApprovalRequest):
    return client.post(
        APPROVALS, {"action": "approve_selected", ACTION_CHECKBOX_NAME: [request.pk], "index": "0"}, follow=True
    )


def _actions() -> list[tuple[str, str, str]]:
    return [(a.actor.username, a.action, a.object_type) for a in StaffAction.objects.order_by("id")]


def test_refund_form_shows_what_is_left_in_major_units(agent, captured):
    payment = captured(150_000, "kwd")

    response = logged_in(agent).get(_refund_url(payment))

    assert response.status_code == 200
    html = response.content.decode()
    assert '<td id="remaining">150.000 KD</td>' in html
    assert 'value="150.000"' in html
    assert "Refunds above 500.000 KD wait for another staff member's approval." in html


def test_refund_within_the_limit_runs_at_once_and_is_audited(agent, captured):
    # given a $200.00 payment and an agent (limit $500.00)
    payment = captured(20_000)

    # when the agent refunds $12.50 of it
    response = logged_in(agent).post(
        _refund_url(payment), {"amount": "12.50", "refund_reason": "requested_by_customer", "reason": "Damaged box"}
    )

    # then the refund exists now, by the agent, with its staff action and auditlog entry
    assert response.status_code == 302
    assert response["Location"] == f"/admin/payments/payment/{payment.pk}/change/"
    refund = Refund.objects.get(payment=payment)
    assert (refund.amount, refund.currency, refund.status, refund.requested_by) == (1250, "usd", "pending", agent)
    assert refund.status_changes.get().source == "admin"
    action = StaffAction.objects.get()
    assert (action.actor, action.action, action.object_type, action.object_id) == (
        agent,
        "refund",
        "payment",
        payment.public_id,
    )
    assert (action.reason, action.remote_addr) == ("Damaged box", "127.0.0.1")
    assert action.after == {"refund": refund.public_id, "amount": 1250, "currency": "usd", "status": "pending"}
    entry = LogEntry.objects.get_for_object(refund).get()
    assert (entry.action, entry.actor, entry.remote_addr) == (LogEntry.Action.CREATE, agent, "127.0.0.1")
    assert ApprovalRequest.objects.count() == 0
    assert audit_verify() is None


def test_refund_amount_with_too_many_decimals_is_refused(agent, captured):
    payment = captured(5000, "jpy")

    response = logged_in(agent).post(
        _refund_url(payment), {"amount": "10.5", "refund_reason": "duplicate", "reason": "Twice"}
    )

    assert response.status_code == 200
    assert "JPY has 0 decimal places" in response.content.decode()
    assert Refund.objects.count() == 0
    assert StaffAction.objects.count() == 0


def test_refund_without_reason_is_refused(agent, captured):
    payment = captured(2000)

    response = logged_in(agent).post(_refund_url(payment), {"amount": "5", "refund_reason": "duplicate", "reason": " "})

    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert Refund.objects.count() == 0


def test_refund_above_the_limit_waits_for_another_lead(lead, other_lead, captured):
    # given a $800.00 payment: a refund of $600.00 is above the $500.00 limit
    payment = captured(80_000)

    # when a lead asks for it
    response = logged_in(lead).post(
        _refund_url(payment), {"amount": "600.00", "refund_reason": "requested_by_customer", "reason": "Goodwill"}
    )

    # then nothing is refunded yet: a pending request waits
    assert response.status_code == 302
    request = ApprovalRequest.objects.get()
    assert (request.kind, request.object_id, request.status, request.requested_by) == (
        "refund",
        payment.public_id,
        ApprovalStatus.PENDING,
        lead,
    )
    assert request.params == {"amount": 60_000, "currency": "usd", "refund_reason": "requested_by_customer"}
    assert Refund.objects.count() == 0

    # when another lead approves it from the changelist
    response = _approve(logged_in(other_lead), request)

    # then the refund is created (asked by the first lead) and every step is recorded
    assert response.status_code == 200
    refund = Refund.objects.get()
    assert (refund.amount, refund.requested_by) == (60_000, lead)
    request.refresh_from_db()
    assert (request.status, request.decided_by) == (ApprovalStatus.APPROVED, other_lead)
    assert request.result == f"refund {refund.public_id} created ($600.00)"
    assert f"Request {request.pk} approved: refund {refund.public_id} created ($600.00)" in response.content.decode()
    assert _actions() == [
        ("lead-lou", "request_refund", "payment"),
        ("lead-lee", "approve", "approval_request"),
        ("lead-lee", "refund", "payment"),
    ]
    assert LogEntry.objects.get_for_object(refund).get().actor == other_lead
    assert audit_verify() is None


def test_requester_cannot_approve_their_own_request(lead, captured):
    payment = captured(80_000)
    logged_in(lead).post(
        _refund_url(payment), {"amount": "600.00", "refund_reason": "requested_by_customer", "reason": "Goodwill"}
    )
    request = ApprovalRequest.objects.get()

    response = _approve(logged_in(lead), request)

    assert response.status_code == 200
    assert (
        f"Request {request.pk}: You cannot approve or reject your own request: another staff member must decide."
        in response.content.decode()
    )
    request.refresh_from_db()
    assert (request.status, request.decided_by) == (ApprovalStatus.PENDING, None)
    assert Refund.objects.count() == 0
    assert _actions() == [("lead-lou", "request_refund", "payment")]
    with pytest.raises(ApprovalBySelf):
        approval_request_approve(request_id=request.pk, approver=lead)


def test_override_requested_by_one_and_approved_by_another(agent, lead, captured):
    # given a succeeded payment (the state machine forbids succeeded -> failed)
    payment = captured(2000)

    # when an agent asks for an override and a lead approves it
    response = logged_in(agent).post(
        f"/admin/payments/payment/{payment.pk}/override-status/",
        {"to_status": "failed", "reason": "Bank confirmed the charge bounced"},
    )
    assert response.status_code == 302
    request = ApprovalRequest.objects.get()
    payment.refresh_from_db()
    assert payment.status == "succeeded"  # nothing yet
    _approve(logged_in(lead), request)

    # then the status changed with its history row, its event and the staff actions
    payment.refresh_from_db()
    assert payment.status == "failed"
    change = PaymentStatusChange.objects.filter(payment=payment).order_by("-id").first()
    assert (change.from_status, change.to_status, change.source, change.actor, change.reason) == (
        "succeeded",
        "failed",
        "admin",
        lead,
        "Bank confirmed the charge bounced",
    )
    assert (
        Event.objects.filter(subject_id=payment.public_id).order_by("-sequence").first().type
        == "payment.status_overridden"
    )
    request.refresh_from_db()
    assert (request.status, request.result) == (ApprovalStatus.APPROVED, "status succeeded -> failed")
    assert _actions() == [
        ("agent-ann", "request_status_override", "payment"),
        ("lead-lou", "approve", "approval_request"),
        ("lead-lou", "status_override", "payment"),
    ]
    last = StaffAction.objects.order_by("-id").first()
    assert (last.before, last.after) == ({"status": "succeeded"}, {"status": "failed", "approval_request": request.pk})
    assert LogEntry.objects.get_for_object(payment).order_by("-id").first().actor == lead


def test_payment_page_lists_its_staff_actions_newest_first(agent, lead, captured):
    payment = captured(2000)
    request = payment_override_request(payment=payment, to_status="failed", reason="Bounced", actor=agent)
    approval_request_approve(request_id=request.pk, approver=lead)

    response = logged_in(lead).get(f"/admin/payments/payment/{payment.pk}/change/")

    html = response.content.decode()
    assert response.status_code == 200
    actions = [html.index(f'<td class="field-action">{name}</td>') for name in ("status_override", "approve")]
    assert actions == sorted(actions)
    assert html.index("request_status_override") > actions[1]


def test_approved_request_that_cannot_run_ends_failed(lead, other_lead, captured):
    # given a request to refund $600.00, after which the payment was refunded in full meanwhile
    payment = captured(80_000)
    logged_in(lead).post(
        _refund_url(payment), {"amount": "600.00", "refund_reason": "requested_by_customer", "reason": "Goodwill"}
    )
    logged_in(other_lead).post(_refund_url(payment), {"amount": "400.00", "refund_reason": "duplicate", "reason": "x"})
    logged_in(lead).post(_refund_url(payment), {"amount": "400.00", "refund_reason": "duplicate", "reason": "y"})
    request = ApprovalRequest.objects.get()

    # when it is approved
    decided = approval_request_approve(request_id=request.pk, approver=other_lead)

    # then nothing is refunded beyond what was received, and the request says why
    assert decided.status == ApprovalStatus.FAILED
    assert decided.result == "amount exceeds what is left to refund (0, $0.00)."
    assert Refund.objects.filter(amount=60_000).count() == 0
    assert StaffAction.objects.order_by("-id").first().action == "refund_failed"


@pytest.mark.django_db
def test_a_refund_request_needs_the_approve_refund_permission(agent, make_staff, captured):
    from django.contrib.auth.models import Permission

    from audit.errors import ApprovalNotAllowed
    from audit.models import ApprovalRequest

    payment = captured(100_000)
    request = staff_refund_request(payment=payment, amount=90_000, refund_reason="", reason="big one", actor=agent)
    approver = make_staff("lead-without-refunds", "finance_lead")
    approver.groups.get().permissions.remove(Permission.objects.get(codename="approve_refund"))
    approver = type(approver).objects.get(pk=approver.pk)  # drop the permission cache

    with pytest.raises(ApprovalNotAllowed):
        approval_request_approve(request_id=request.pk, approver=approver)

    assert ApprovalRequest.objects.get(pk=request.pk).status == "pending"
