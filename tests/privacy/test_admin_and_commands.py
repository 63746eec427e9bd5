"""The back office's "Erase customer" (a reason, four eyes) and "Export" (a JSON download, audited), and the
`customer_erase` / `customer_export` commands."""

import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from audit.errors import ApprovalBySelf
from audit.models import ApprovalRequest, ApprovalStatus, StaffAction
from audit.services import approval_request_approve
from payments.models import Payment
from privacy.models import CustomerErasure
from tests.audit.conftest import logged_in
from tests.privacy.conftest import EMAIL, PERSONAL, tables_holding

pytestmark = pytest.mark.django_db


def test_erase_in_the_admin_needs_a_reason_and_a_second_lead(
    subject, lead, other_lead, django_capture_on_commit_callbacks
):
    page = logged_in(lead).get(reverse("admin:customers_customer_change", args=[subject.customer.pk]))
    erase_url = reverse("admin:customers_customer_erase", args=[subject.customer.pk])
    assert erase_url in page.content.decode()

    empty = logged_in(lead).post(erase_url, {"reason": "  "})
    assert empty.status_code == 200
    assert ApprovalRequest.objects.count() == 0

    asked = logged_in(lead).post(erase_url, {"reason": "GDPR request #123"})

    assert asked.status_code == 302
    request = ApprovalRequest.objects.get()
    assert (request.kind, request.object_id, request.status) == (
        "customer_erase",
        subject.customer.public_id,
        "pending",
    )
    assert Payment.objects.get(pk=subject.payment.pk).customer_email == EMAIL  # nothing erased yet
    with pytest.raises(ApprovalBySelf):
        approval_request_approve(request_id=request.pk, approver=lead)

    with django_capture_on_commit_callbacks(execute=True):
        approved = approval_request_approve(request_id=request.pk, approver=other_lead, reason="checked")

    assert approved.status == ApprovalStatus.APPROVED
    erasure = CustomerErasure.objects.get()
    assert (erasure.actor, erasure.source, erasure.reason) == (other_lead, "admin", "GDPR request #123")
    assert tables_holding(*PERSONAL) == {}
    assert StaffAction.objects.filter(action="erase_customer", actor=other_lead).count() == 1
    page = logged_in(lead).get(reverse("admin:customers_customer_change", args=[subject.customer.pk]))
    assert erase_url not in page.content.decode()  # erased: nothing left to ask for


def test_an_agent_can_neither_erase_nor_export(subject, make_staff):
    agent = make_staff("agent-ann", "finance_agent")
    client = logged_in(agent)

    erase = client.post(reverse("admin:customers_customer_erase", args=[subject.customer.pk]), {"reason": "x"})
    export = client.get(reverse("admin:customers_customer_export", args=[subject.customer.pk]))

    assert (erase.status_code, export.status_code) == (403, 403)
    assert ApprovalRequest.objects.count() == 0
    assert not StaffAction.objects.filter(action="export_customer").exists()


def test_export_in_the_admin_downloads_the_json_and_is_audited(subject, lead):
    response = logged_in(lead).get(reverse("admin:customers_customer_export", args=[subject.customer.pk]))

    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="{subject.customer.public_id}.json"'
    assert json.loads(response.content)["customer"]["email"] == EMAIL
    action = StaffAction.objects.get(action="export_customer")
    assert (action.actor, action.object_id) == (lead, subject.customer.public_id)


def test_the_commands_export_then_erase(subject, lead, tmp_path, capsys):
    output = tmp_path / "export.json"
    call_command("customer_export", "--client", "storefront-a", "--customer-id", "cus_erase", "--output", str(output))
    assert json.loads(output.read_text())["customer"]["email"] == EMAIL

    call_command(
        "customer_erase", "--client", "storefront-a", "--customer-id", "cus_erase", "--reason", "ticket 9",
        "--actor", lead.username,
    )  # fmt: skip

    assert f"Customer {subject.customer.public_id} erased" in capsys.readouterr().out
    assert CustomerErasure.objects.get().source == "worker"
    assert tables_holding(*PERSONAL) == {}
    call_command("customer_export", "--client", "storefront-a", "--customer-id", "cus_erase")
    assert not [needle for needle in PERSONAL if needle.lower() in capsys.readouterr().out.lower()]
    with pytest.raises(CommandError, match="no customer 'cus_erase' to erase"):
        call_command(
            "customer_erase", "--client", "storefront-a", "--customer-id", "cus_erase", "--reason", "again",
            "--actor", lead.username,
        )  # fmt: skip
    with pytest.raises(CommandError, match="No storefront API client named 'nobody'"):
        call_command("customer_export", "--client", "nobody", "--customer-id", "cus_erase")
