"""App configuration for `privacy`: erasure and export of customers, webhook payload retention (the top layer)."""

from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "privacy"

    def ready(self) -> None:
        # Imported here, not at the top: these modules use models, which load only after the app registry.
        from audit.approvals import ApprovalKind, approval_kind_register
        from customers.ports import customer_privacy_register
        from privacy.port import CustomerPrivacyService
        from privacy.staff import ERASE_KIND, run_approved_erase, summarize_erase

        customer_privacy_register(CustomerPrivacyService())
        approval_kind_register(
            ApprovalKind(
                name=ERASE_KIND,
                run=run_approved_erase,
                summarize=summarize_erase,
                approver_permission="privacy.erase_customer",
            )
        )
