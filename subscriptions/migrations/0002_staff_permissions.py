"""Give the staff groups the subscriptions' permissions: everyone reads, finance agents and leads may cancel.

Permissions are added to the groups of accounts/0002 (never replaced).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW = ["subscriptions.view_subscription", "subscriptions.view_invoice", "subscriptions.view_price"]
GRANTS: dict[str, list[str]] = {
    "finance_agent": [*VIEW, "subscriptions.cancel_subscription"],
    "finance_lead": [*VIEW, "subscriptions.cancel_subscription"],
    "auditor": VIEW,
}


def grant_permissions(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    app_config = apps.get_app_config("subscriptions")
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
    apps.get_model("auth", "Permission").objects.filter(content_type__app_label="subscriptions").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0001_initial"),
        ("accounts", "0002_staff_groups"),
    ]

    operations = [migrations.RunPython(grant_permissions, revoke_permissions)]
