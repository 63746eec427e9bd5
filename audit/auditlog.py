"""django-auditlog registration: field changes of the money models and the configuration models."""

from auditlog.registry import auditlog
from django.apps import apps


def register_models() -> None:
    """Register the audited models (called once from `AuditConfig.ready`).

    Fields that change on every worker pass (timestamps, retry counters, in-flight markers) are left
    out so that the log shows decisions, not noise; secrets are never logged.
    """
    auditlog.register(
        apps.get_model("payments", "Payment"),
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
    auditlog.register(
        apps.get_model("refunds", "Refund"),
        exclude_fields=["updated_at", "attempts", "last_error", "idempotency_key"],
    )
    auditlog.register(apps.get_model("audit", "ApprovalRequest"))
    auditlog.register(apps.get_model("risk", "RiskSettings"))
    auditlog.register(apps.get_model("risk", "CurrencyThreshold"))
    auditlog.register(apps.get_model("risk", "BlocklistEntry"))
    auditlog.register(apps.get_model("audit", "Discrepancy"))
    auditlog.register(
        apps.get_model("accounts", "User"),
        exclude_fields=["password", "last_login"],
        m2m_fields={"groups", "user_permissions"},
    )
    auditlog.register(apps.get_model("auth", "Group"), m2m_fields={"permissions"})
