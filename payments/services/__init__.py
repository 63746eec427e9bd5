"""Every write to a payment (a package: the status writer, create, gateway operations, staff, reports).

Callers import from here: `from payments.services import payment_create`.
"""

from payments.services.create import normalize_email, payment_create
from payments.services.invoices import payment_record_for_invoice
from payments.services.operations import (
    SETTLE_TASK,
    payment_apply_intent,
    payment_cancel,
    payment_capture,
    payment_confirm,
    payment_settle,
    payment_sync,
)
from payments.services.recovery import payments_sweep_stuck
from payments.services.reported import payment_add_refunded, payment_flag_dispute
from payments.services.staff import (
    OVERRIDE_KIND,
    payment_mark_needs_attention,
    payment_override_request,
    payment_override_status,
    payment_retry_stuck,
    run_approved_override,
)
from payments.services.status import (
    payment_event_record,
    payment_review_close,
    payment_status_change,
    payment_status_initial,
    payment_status_override,
)

__all__ = [
    "OVERRIDE_KIND",
    "SETTLE_TASK",
    "normalize_email",
    "payment_add_refunded",
    "payment_apply_intent",
    "payment_cancel",
    "payment_capture",
    "payment_confirm",
    "payment_create",
    "payment_event_record",
    "payment_flag_dispute",
    "payment_mark_needs_attention",
    "payment_override_request",
    "payment_override_status",
    "payment_record_for_invoice",
    "payment_retry_stuck",
    "payment_review_close",
    "payment_settle",
    "payment_status_change",
    "payment_status_initial",
    "payment_status_override",
    "payment_sync",
    "payments_sweep_stuck",
    "run_approved_override",
]
