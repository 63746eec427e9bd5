"""App configuration for `payments`: the core."""

from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "payments"

    def ready(self) -> None:
        # Imported here, not at the top: these modules use models, which load only after the app registry.
        from auditlog.registry import auditlog

        from audit.approvals import ApprovalKind, approval_kind_register
        from payments.models import Payment
        from payments.services import OVERRIDE_KIND, run_approved_override

        auditlog.register(
            Payment,
            exclude_fields=[
                "updated_at",
                "client_secret",
                "pending_operation",
                "pending_operation_amount",
                "pending_operation_at",
                "last_error",
                "risk_assessment",  # a reverse relation: reading it would cost a query on every save
            ],
        )
        approval_kind_register(
            ApprovalKind(
                name=OVERRIDE_KIND,
                run=run_approved_override,
                summarize=lambda params: f"status {params.get('from_status', '?')} -> {params['to_status']}",
            )
        )
