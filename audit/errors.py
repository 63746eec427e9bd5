"""Expected failures of the back office's four-eyes flow."""

from config.api.errors import ApplicationError


class ApprovalNotPending(ApplicationError):
    status_code = 409
    default_code = "approval_not_pending"
    default_message = "This request has already been decided."


class ApprovalBySelf(ApplicationError):
    status_code = 403
    error_type = "permission_error"
    default_code = "approval_by_requester"
    default_message = "You cannot approve or reject your own request: another staff member must decide."


class ApprovalNotAllowed(ApplicationError):
    status_code = 403
    error_type = "permission_error"
    default_code = "approval_not_allowed"
    default_message = "You do not have the permission to approve requests."
