"""Writes of the back office's ground floor: the hash-chained staff log and four-eyes approvals."""

from audit.services.approvals import (
    approval_followup,
    approval_request_approve,
    approval_request_create,
    approval_request_reject,
)
from audit.services.chain import (
    ERASED,
    GENESIS_HASH,
    ChainBreak,
    audit_verify,
    staff_action_erase,
    staff_action_hash,
    staff_action_record,
    staff_retry_record,
)

__all__ = [
    "ERASED",
    "GENESIS_HASH",
    "ChainBreak",
    "approval_followup",
    "approval_request_approve",
    "approval_request_create",
    "approval_request_reject",
    "audit_verify",
    "staff_action_erase",
    "staff_action_hash",
    "staff_action_record",
    "staff_retry_record",
]
