"""App configuration for `refunds`: built on payments."""

from django.apps import AppConfig


class RefundsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "refunds"

    def ready(self) -> None:
        # Imported here, not at the top: these modules use models, which load only after the app registry.
        from auditlog.registry import auditlog

        from audit.approvals import ApprovalKind, approval_kind_register
        from refunds.models import Refund
        from refunds.services import REFUND_KIND, run_approved_refund, summarize_refund_request

        auditlog.register(Refund, exclude_fields=["updated_at", "attempts", "last_error", "idempotency_key"])
        approval_kind_register(
            ApprovalKind(
                name=REFUND_KIND,
                run=run_approved_refund,
                summarize=summarize_refund_request,
                approver_permission="refunds.approve_refund",
            )
        )
