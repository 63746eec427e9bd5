"""App configuration for `subscriptions`: prices, subscriptions and invoices mirrored from the gateway's billing."""

from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "subscriptions"

    def ready(self) -> None:
        # Imported here, not at the top: these modules use models, which load only after the app registry.
        from auditlog.registry import auditlog

        from audit.approvals import ApprovalKind, approval_kind_register
        from subscriptions.models import Invoice, Subscription
        from subscriptions.staff import (
            MARK_UNCOLLECTIBLE_KIND,
            run_approved_mark_uncollectible,
            summarize_mark_uncollectible,
        )

        auditlog.register(Subscription, exclude_fields=["updated_at", "metadata"])
        auditlog.register(Invoice, exclude_fields=["updated_at"])
        approval_kind_register(
            ApprovalKind(
                name=MARK_UNCOLLECTIBLE_KIND,
                run=run_approved_mark_uncollectible,
                summarize=summarize_mark_uncollectible,
                approver_permission="subscriptions.mark_invoice_uncollectible",
            )
        )
