"""Staff's erasure of a customer in the back office: four eyes (the approval kind `customer_erase`), the gateway
called after the approval commits (no transaction open across it), and the export, audited.
"""

import logging
from typing import Any

from rest_framework.exceptions import NotFound

from accounts.models import User
from audit.approvals import ApprovalOutcome
from audit.models import ApprovalRequest
from audit.services import approval_followup, approval_request_create, staff_action_record
from config.api.errors import ApplicationError
from customers.models import Customer
from gateways.base import GatewayError
from payments.models import ChangeSource
from privacy.selectors import customer_export, customer_find_erasable, customer_is_erased
from privacy.services import customer_erase

logger = logging.getLogger(__name__)
ERASE_KIND = "customer_erase"


class CustomerErased(ApplicationError):
    status_code = 409
    error_type = "state_error"
    default_code = "customer_erased"
    default_message = "The customer is erased already."


def customer_erase_request(
    *, customer: Customer, actor: User, reason: str, remote_addr: str | None = None
) -> ApprovalRequest:
    """Ask for a customer's erasure; a second staff member's approval runs it.

    :raises ValueError: no reason.
    :raises CustomerErased: erased already.
    """
    if customer_is_erased(customer):
        raise CustomerErased()
    return approval_request_create(
        kind=ERASE_KIND,
        object_type="customer",
        object_id=customer.public_id,
        params={"client": customer.client_id, "customer_id": customer.customer_id},
        reason=reason,
        requested_by=actor,
        remote_addr=remote_addr,
    )


def run_approved_erase(request: ApprovalRequest, approver: User) -> ApprovalOutcome:
    """The approval kind `customer_erase`: checked here, erased right after the approval commits.

    :raises CustomerErased: the customer was erased meanwhile.
    """
    client_pk, customer_id = request.params["client"], request.params["customer_id"]
    try:
        customer = customer_find_erasable(client=User.objects.get(pk=client_pk), customer_id=customer_id)
    except NotFound:
        raise CustomerErased() from None
    public_id = customer.public_id
    approval_followup(
        work=lambda: customer_erase(
            client=User.objects.get(pk=client_pk),
            customer_id=customer_id,
            actor=approver,
            reason=request.reason,
            source=ChangeSource.ADMIN,
        ),
        failures=(ApplicationError, GatewayError, NotFound),
        approver=approver,
        action="erase_customer",
        object_type="customer",
        object_id=public_id,
        reason=request.reason,
        approval_request=request.pk,
    )
    return ApprovalOutcome(
        result=f"customer {public_id} sent to be erased (gateway first, then our rows)",
        before={"erased": False},
        after={"erased": "after approval"},
    )


def summarize_erase(params: dict[str, Any]) -> str:
    return f"erase customer {params.get('customer_id', '?')}'s personal data"


def customer_export_by_staff(*, customer: Customer, actor: User, remote_addr: str | None = None) -> dict[str, Any]:
    """The export, recorded in the staff log (who looked at everything held about whom)."""
    exported = customer_export(client=customer.client, customer_id=customer.customer_id)
    staff_action_record(
        actor=actor,
        action="export_customer",
        object_type="customer",
        object_id=customer.public_id,
        reason="Export of the customer's data (right of access)",
        remote_addr=remote_addr,
    )
    return exported
