"""django-auditlog registration of the models the audit app owns or shares: users, groups, approval requests.

Every other app registers its own models in its `AppConfig.ready()`, leaving out fields that change on
every worker pass (timestamps, retry counters, in-flight markers) so the log shows decisions, not
noise; secrets are never logged.
"""

from auditlog.registry import auditlog
from django.contrib.auth.models import Group

from accounts.models import User
from audit.models import ApprovalRequest


def register_models() -> None:
    """Register the audited models of this app (called once from `AuditConfig.ready`)."""
    auditlog.register(ApprovalRequest)
    auditlog.register(User, exclude_fields=["password", "last_login"], m2m_fields={"groups", "user_permissions"})
    auditlog.register(Group, m2m_fields={"permissions"})
