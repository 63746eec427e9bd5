"""Every write to a refund (a package: the status writer, create, submit, batch, staff, recovery).

Lock order is always payment, then refund. Callers import from here: `from refunds.services import refund_create`.
"""

from refunds.services.batch import refunds_submit_new, refunds_trigger_submission
from refunds.services.create import refund_create, refund_record_external
from refunds.services.recovery import refunds_sweep_stuck
from refunds.services.staff import (
    REFUND_KIND,
    refund_retry_stuck,
    run_approved_refund,
    staff_refund_request,
    summarize_refund_request,
)
from refunds.services.status import refund_event_record, refund_status_change, refund_status_initial
from refunds.services.submit import (
    SUBMIT_TASK,
    refund_apply_gateway_refund,
    refund_apply_result,
    refund_mark_needs_attention,
    refund_submit,
)

__all__ = [
    "REFUND_KIND",
    "SUBMIT_TASK",
    "refund_apply_gateway_refund",
    "refund_apply_result",
    "refund_create",
    "refund_event_record",
    "refund_mark_needs_attention",
    "refund_record_external",
    "refund_retry_stuck",
    "refund_status_change",
    "refund_status_initial",
    "refund_submit",
    "refunds_submit_new",
    "refunds_sweep_stuck",
    "refunds_trigger_submission",
    "run_approved_refund",
    "staff_refund_request",
    "summarize_refund_request",
]
