"""The dispute desk's permissions: everyone on staff reads disputes; finance agents and leads save and submit
evidence and accept a dispute (above the approval limit, a second person with `audit.approve_request` approves).

Permissions are added to the groups of accounts/0002 (never replaced).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

NEW = ["submit_evidence", "accept_dispute"]
VIEW = ["disputes.view_dispute", "disputes.view_disputestatuschange", "disputes.view_disputeevidencefile"]
ACT = ["disputes.submit_evidence", "disputes.accept_dispute"]
GRANTS: dict[str, list[str]] = {
    "finance_agent": [*VIEW, *ACT],
    "finance_lead": [*VIEW, *ACT],
    "auditor": VIEW,
}


def grant_permissions(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    app_config = apps.get_app_config("disputes")
    models_module = getattr(app_config, "models_module", None)
    app_config.models_module = models_module or True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = models_module
    for name, codenames in GRANTS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for dotted in codenames:
            app_label, codename = dotted.split(".")
            group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def revoke_permissions(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    granted = Permission.objects.filter(content_type__app_label="disputes")
    for group in Group.objects.filter(name__in=GRANTS):
        group.permissions.remove(*granted)
    granted.filter(codename__in=NEW).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("disputes", "0001_initial"),
        ("accounts", "0002_staff_groups"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="dispute",
            options={
                "ordering": ("-created_at", "-id"),
                "permissions": [
                    ("submit_evidence", "Can save and submit a dispute's evidence"),
                    ("accept_dispute", "Can accept a dispute (close it as lost)"),
                ],
            },
        ),
        migrations.RunPython(grant_permissions, revoke_permissions),
    ]
