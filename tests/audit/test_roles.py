"""Staff roles: each group sees and can do what it should, and an auditor can change nothing."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group
from django.core.management import call_command

from accounts.models import User
from audit.errors import ApprovalNotAllowed
from audit.models import ApprovalRequest, ApprovalStatus, StaffAction
from audit.services import approval_request_approve
from payments.services import payment_override_request
from refunds.models import Refund
from tests.audit.conftest import logged_in
from tests.audit.factories import StaffActionFactory

pytestmark = pytest.mark.django_db

AGENT_EXTRA = {"refunds.add_refund", "payments.override_status", "audit.add_approvalrequest", "audit.view_staffaction"}
LEAD_EXTRA = {"audit.approve_request", "reconciliation.run_reconciliation_fix", "audit.view_audit_trail"}


def _perms(group: str) -> set[str]:
    return {
        f"{app}.{codename}"
        for app, codename in Group.objects.get(name=group).permissions.values_list(
            "content_type__app_label", "codename"
        )
    }


def test_migration_creates_the_three_groups_with_their_permissions():
    # (no fixture: the groups come from accounts/migrations/0002_staff_groups.py)
    agent, lead, auditor = _perms("finance_agent"), _perms("finance_lead"), _perms("auditor")

    assert {"payments.view_payment", "refunds.view_refund", "webhooks.view_webhookevent"} <= agent
    assert agent >= AGENT_EXTRA
    assert LEAD_EXTRA & agent == set()
    assert lead >= AGENT_EXTRA | LEAD_EXTRA
    assert "auditlog.view_logentry" in lead
    assert {"refunds.approve_refund", "webhooks.reprocess_webhookevent"} <= lead
    assert "webhooks.reprocess_webhookevent" in agent
    assert "refunds.approve_refund" not in agent
    assert {"audit.view_audit_trail", "auditlog.view_logentry", "payments.view_payment", "audit.view_staffaction"} <= (
        auditor
    )
    assert {perm for perm in auditor if not perm.split(".")[1].startswith("view_")} == set()


def test_auditor_can_read_everything_and_change_nothing(auditor, agent, captured):
    payment = captured(2000)
    request = payment_override_request(payment=payment, to_status="failed", reason="Bounced", actor=agent)
    action = StaffAction.objects.get()
    client = logged_in(auditor)

    for url in (
        "/admin/payments/payment/",
        f"/admin/payments/payment/{payment.pk}/change/",
        "/admin/refunds/refund/",
        "/admin/audit/staffaction/",
        f"/admin/audit/staffaction/{action.pk}/change/",
        "/admin/audit/approvalrequest/",
        "/admin/auditlog/logentry/",
    ):
        assert client.get(url).status_code == 200, url

    refused = {
        f"/admin/payments/payment/{payment.pk}/refund/": {"amount": "1", "refund_reason": "duplicate", "reason": "x"},
        f"/admin/payments/payment/{payment.pk}/override-status/": {"to_status": "canceled", "reason": "x"},
        f"/admin/payments/payment/{payment.pk}/change/": {"status": "canceled"},
        f"/admin/audit/staffaction/{action.pk}/change/": {"reason": "rewritten"},
        f"/admin/audit/staffaction/{action.pk}/delete/": {"post": "yes"},
        f"/admin/audit/approvalrequest/{request.pk}/delete/": {"post": "yes"},
    }
    for url, data in refused.items():
        assert client.post(url, data).status_code == 403, url
    response = client.post(
        "/admin/audit/approvalrequest/", {"action": "approve_selected", ACTION_CHECKBOX_NAME: [request.pk], "index": 0}
    )
    assert response.status_code == 200

    request.refresh_from_db()
    assert request.status == ApprovalStatus.PENDING
    assert Refund.objects.count() == 0
    assert list(StaffAction.objects.values_list("action", "reason")) == [("request_status_override", "Bounced")]


def test_nobody_changes_or_deletes_audit_rows_in_the_admin(admin_client, lead):
    action = StaffActionFactory(actor=lead, reason="r")

    assert admin_client.post(f"/admin/audit/staffaction/{action.pk}/change/", {"reason": "x"}).status_code == 403
    assert admin_client.post(f"/admin/audit/staffaction/{action.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.get("/admin/audit/staffaction/add/").status_code == 403
    assert StaffAction.objects.get().reason == "r"


def test_agent_cannot_approve_and_does_not_see_the_audit_trail(agent, make_staff, captured):
    payment = captured(2000)
    requester = make_staff("agent-bob", "finance_agent")
    request = payment_override_request(payment=payment, to_status="failed", reason="Bounced", actor=requester)
    client = logged_in(agent)

    response = client.get("/admin/audit/approvalrequest/")
    assert response.status_code == 200
    assert "approve_selected" not in response.content.decode()
    client.post("/admin/audit/approvalrequest/", {"action": "approve_selected", ACTION_CHECKBOX_NAME: [request.pk]})
    assert client.get("/admin/audit/staffaction/").status_code == 403
    with pytest.raises(ApprovalNotAllowed):
        approval_request_approve(request_id=request.pk, approver=agent)

    request.refresh_from_db()
    assert request.status == ApprovalStatus.PENDING
    assert StaffAction.objects.count() == 1


def test_lead_approves_an_agents_request(agent, lead, captured):
    payment = captured(2000)
    request = payment_override_request(payment=payment, to_status="failed", reason="Bounced", actor=agent)

    response = logged_in(lead).post(
        "/admin/audit/approvalrequest/", {"action": "approve_selected", ACTION_CHECKBOX_NAME: [request.pk]}
    )

    assert response.status_code == 302
    request.refresh_from_db()
    assert (request.status, request.decided_by) == (ApprovalStatus.APPROVED, lead)


def test_lead_rejects_an_agents_request_and_nothing_runs(agent, lead, captured):
    payment = captured(2000)
    request = payment_override_request(payment=payment, to_status="failed", reason="Bounced", actor=agent)

    logged_in(lead).post(
        "/admin/audit/approvalrequest/", {"action": "reject_selected", ACTION_CHECKBOX_NAME: [request.pk]}
    )

    request.refresh_from_db()
    payment.refresh_from_db()
    assert (request.status, request.decided_by, payment.status) == (ApprovalStatus.REJECTED, lead, "succeeded")
    assert list(StaffAction.objects.order_by("id").values_list("action", flat=True)) == [
        "request_status_override",
        "reject",
    ]


def test_pending_requests_are_listed_first(agent, lead, other_lead, captured):
    payment = captured(2000)
    first = payment_override_request(payment=payment, to_status="failed", reason="a", actor=agent)
    second = payment_override_request(payment=payment, to_status="failed", reason="b", actor=agent)
    approval_request_approve(request_id=second.pk, approver=lead)
    third = payment_override_request(payment=payment, to_status="canceled", reason="c", actor=agent)

    response = logged_in(other_lead).get("/admin/audit/approvalrequest/")

    assert [request.pk for request in response.context["cl"].result_list] == [third.pk, first.pk, second.pk]


def test_demo_data_creates_one_staff_user_per_group_idempotently(staff_groups, capsys):
    call_command("create_demo_data")
    call_command("create_demo_data")

    users = {user.username: user for user in User.objects.filter(username__startswith="demo-").exclude(is_staff=False)}
    assert {name: [g.name for g in user.groups.all()] for name, user in users.items()} == {
        "demo-agent": ["finance_agent"],
        "demo-lead": ["finance_lead"],
        "demo-lead-2": ["finance_lead"],
        "demo-auditor": ["auditor"],
    }
    assert all(user.is_staff and not user.is_superuser for user in users.values())
    assert users["demo-agent"].check_password("demo-agent-password")
    assert "demo-auditor / demo-auditor-password" in capsys.readouterr().out
    assert ApprovalRequest.objects.count() == 0
