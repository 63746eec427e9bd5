"""Staff actions on invoices and prices: finance agents and leads may retry an open invoice and mark one
uncollectible (above the approval limit that asks a second person), finance leads alone may create a price.

Permissions are added to the groups of accounts/0002 (never replaced).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

NEW = ["retry_invoice", "mark_invoice_uncollectible", "create_price"]
GRANTS: dict[str, list[str]] = {
    "finance_agent": ["subscriptions.retry_invoice", "subscriptions.mark_invoice_uncollectible"],
    "finance_lead": [
        "subscriptions.retry_invoice",
        "subscriptions.mark_invoice_uncollectible",
        "subscriptions.create_price",
    ],
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
    apps.get_model("auth", "Permission").objects.filter(
        content_type__app_label="subscriptions", codename__in=NEW
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0002_staff_permissions"),
        ("accounts", "0002_staff_groups"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="invoice",
            options={
                "ordering": ("-created_at", "-id"),
                "permissions": [
                    ("retry_invoice", "Can retry an open invoice now (with a reason)"),
                    ("mark_invoice_uncollectible", "Can mark an open invoice uncollectible (with a reason)"),
                ],
            },
        ),
        migrations.AlterModelOptions(
            name="price",
            options={
                "ordering": ("-active", "-created_at", "-id"),
                "permissions": [("create_price", "Can create a price at the gateway")],
            },
        ),
        migrations.RunPython(grant_permissions, revoke_permissions),
    ]
