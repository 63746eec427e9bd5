"""Give the staff groups privacy's permissions: finance leads may ask for an erasure (a second lead approves it)
and export a customer; every group sees the erasures. Added to the groups of accounts/0002 (never replaced).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW = ["privacy.view_customererasure"]
GRANTS: dict[str, list[str]] = {
    "finance_agent": VIEW,
    "finance_lead": [*VIEW, "privacy.erase_customer", "privacy.export_customer"],
    "auditor": VIEW,
}


def grant_permissions(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    app_config = apps.get_app_config("privacy")
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
    apps.get_model("auth", "Permission").objects.filter(content_type__app_label="privacy").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("privacy", "0001_initial"),
        ("accounts", "0002_staff_groups"),
    ]

    operations = [migrations.RunPython(grant_permissions, revoke_permissions)]
