"""Reads of the audit trail for the back office: the staff actions on one object."""

from django.db.models import Q

from audit.models import ApprovalRequest, StaffAction


def staff_action_list_for(*, object_type: str, object_id: str, limit: int = 50) -> list[StaffAction]:
    """The newest staff actions on an object, including the decisions on its approval requests (2 queries)."""
    request_ids = [
        str(pk)
        for pk in ApprovalRequest.objects.filter(object_type=object_type, object_id=object_id).values_list(
            "pk", flat=True
        )
    ]
    query = Q(object_type=object_type, object_id=object_id)
    if request_ids:
        query |= Q(object_type="approval_request", object_id__in=request_ids)
    return list(StaffAction.objects.filter(query).select_related("actor").order_by("-id")[:limit])
