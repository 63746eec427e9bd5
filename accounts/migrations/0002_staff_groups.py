"""Staff roles: the finance_agent, finance_lead and auditor groups with their permissions.

Permissions are normally created after `migrate` (post_migrate); they are created here first so the
groups can be filled in the same run. `payments.override_status` is declared here rather than on the
Payment model, whose Meta this app does not own.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEWED_APPS = ("payments", "refunds", "webhooks", "audit", "reconciliation")
# Apps whose models were elsewhere when this migration was written. On a fresh database it runs while
# they are still there (reconciliation/migrations/0001_initial.py renames the content types later, and
# the grants follow); `create_groups` called with today's apps (tests) finds them under the new label.
FORMER_LABELS = {"reconciliation": "audit"}
AUDIT_LOG = ("audit.view_staffaction", "audit.view_audit_trail", "auditlog.view_logentry")

GROUPS: dict[str, list[str]] = {
    "finance_agent": [
        "refunds.add_refund",
        "webhooks.reprocess_webhookevent",
        "payments.override_status",
        "audit.add_approvalrequest",
        "audit.view_staffaction",
    ],
    "finance_lead": [
        "refunds.add_refund",
        "refunds.approve_refund",
        "webhooks.reprocess_webhookevent",
        "payments.override_status",
        "audit.add_approvalrequest",
        "audit.approve_request",
        "audit.change_approvalrequest",
        "reconciliation.run_reconciliation_fix",
        "reconciliation.change_discrepancy",
        *AUDIT_LOG,
    ],
    "auditor": [*AUDIT_LOG, "accounts.view_user", "auth.view_group"],
}


def create_groups(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    for app_config in apps.get_app_configs():
        models_module = getattr(app_config, "models_module", None)
        app_config.models_module = models_module or True  # historical apps have none; create_permissions wants one
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = models_module
    payment_type, _ = ContentType.objects.get_or_create(app_label="payments", model="payment")
    Permission.objects.get_or_create(
        content_type=payment_type, codename="override_status", defaults={"name": "Can request a status override"}
    )
    view_all = list(
        Permission.objects.filter(content_type__app_label__in=VIEWED_APPS, codename__startswith="view_").exclude(
            codename="view_audit_trail"
        )
    )
    for name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = list(view_all)
        for dotted in codenames:
            app_label, codename = dotted.split(".")
            labels = [app_label, FORMER_LABELS.get(app_label, app_label)]
            wanted.append(Permission.objects.get(content_type__app_label__in=labels, codename=codename))
        group.permissions.set(wanted)


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()
    apps.get_model("auth", "Permission").objects.filter(
        content_type__app_label="payments", codename="override_status"
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("payments", "0003_attention_and_dead_letters"),
        ("refunds", "0002_approve_refund_permission"),
        ("webhooks", "0001_initial"),
        ("audit", "0001_initial"),
        ("auditlog", "0017_add_actor_email"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
