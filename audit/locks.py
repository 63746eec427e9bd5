"""Locks of the audit app: the chain's append lock and approval-request rows.

Lock order, everywhere: approval request, then payment (taken by the owning service), then the chain.
"""

from django.db import connection

from audit.models import ApprovalRequest, StaffAction

# Key of the advisory lock that serializes appends to the chain (any constant unique to this use).
CHAIN_LOCK_KEY = 0x5AFF_AC71


def lock_chain() -> None:
    """Serialize appends to the staff-action chain until the surrounding transaction ends."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
    else:  # SQLite (local runs) serializes writers on its own
        StaffAction.objects.select_for_update().order_by("-id").first()


def lock_approval_request(request_id: int) -> ApprovalRequest:
    return ApprovalRequest.objects.select_for_update(of=("self",)).get(pk=request_id)
