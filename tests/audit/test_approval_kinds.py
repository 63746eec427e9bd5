"""The registry of approval kinds: each app registers its own; audit runs them without knowing them."""

import pytest

from audit.approvals import ApprovalKind, ApprovalOutcome, approval_kind, approval_kind_register, approval_summary
from audit.errors import ApprovalNotAllowed
from audit.models import ApprovalRequest, ApprovalStatus
from audit.services import approval_request_approve, approval_request_create
from tests.accounts.factories import StaffUserFactory
from tests.audit.factories import ApprovalRequestFactory

pytestmark = pytest.mark.django_db


def test_payments_and_refunds_register_their_kinds_with_what_an_approver_needs():
    assert approval_kind("status_override").approver_permission == ""
    assert approval_kind("refund").approver_permission == "refunds.approve_refund"


def test_an_unknown_kind_is_a_value_error():
    with pytest.raises(ValueError, match="Unknown request kind 'teleport'"):
        approval_kind("teleport")


def test_a_second_kind_under_a_taken_name_is_refused_and_the_same_kind_again_is_harmless():
    refund = approval_kind("refund")

    approval_kind_register(refund)
    with pytest.raises(ValueError, match="registered already"):
        approval_kind_register(ApprovalKind(name="refund", run=lambda r, u: ApprovalOutcome("x"), summarize=str))

    assert approval_kind("refund") is refund


def test_the_admin_summary_comes_from_the_kind():
    request = ApprovalRequestFactory.build(kind="refund", params={"amount": 150_000, "currency": "usd"})
    override = ApprovalRequestFactory.build(
        kind="status_override", params={"from_status": "succeeded", "to_status": "failed"}
    )
    unknown = ApprovalRequestFactory.build(kind="teleport", params={})

    assert [approval_summary(r) for r in (request, override, unknown)] == [
        "refund $1,500.00",
        "status succeeded -> failed",
        "teleport",
    ]


def test_a_request_of_an_unregistered_kind_cannot_be_approved_and_stays_pending():
    # given
    requester, approver = StaffUserFactory(), StaffUserFactory(superuser=True)
    request = approval_request_create(
        kind="teleport", object_type="payment", object_id="pay_x", params={}, reason="why not", requested_by=requester
    )

    # when / then
    with pytest.raises(ValueError, match="Unknown request kind"):
        approval_request_approve(request_id=request.pk, approver=approver)
    assert ApprovalRequest.objects.get(pk=request.pk).status == ApprovalStatus.PENDING


def test_a_refund_request_needs_the_approver_to_hold_approve_refund():
    # given an approver who may approve requests but not refunds
    requester = StaffUserFactory()
    approver = StaffUserFactory(permissions=["audit.approve_request"])
    request = approval_request_create(
        kind="refund",
        object_type="payment",
        object_id="pay_x",
        params={"amount": 1000, "currency": "usd"},
        reason="customer asked",
        requested_by=requester,
    )

    # when / then
    with pytest.raises(ApprovalNotAllowed):
        approval_request_approve(request_id=request.pk, approver=approver)
    assert ApprovalRequest.objects.get(pk=request.pk).status == ApprovalStatus.PENDING
