"""App configuration for `disputes`: the gateway's disputes of our payments, mirrored, and their evidence."""

from django.apps import AppConfig


class DisputesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "disputes"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from audit.approvals import ApprovalKind, approval_kind_register
        from disputes.models import Dispute
        from disputes.staff import ACCEPT_KIND, run_approved_dispute_accept, summarize_dispute_accept

        auditlog.register(Dispute, exclude_fields=["updated_at", "evidence"])
        approval_kind_register(
            ApprovalKind(
                name=ACCEPT_KIND,
                run=run_approved_dispute_accept,
                summarize=summarize_dispute_accept,
                approver_permission="disputes.accept_dispute",
            )
        )
