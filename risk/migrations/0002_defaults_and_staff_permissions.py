"""Seed the default risk settings and thresholds; give the staff groups the risk permissions.

finance_agent decides reviews and keeps the blocklist; finance_lead also edits the rules' settings;
auditor reads everything. Permissions are added to the groups of accounts/0002 (never replaced).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from risk.defaults import DEFAULT_THRESHOLDS

VIEW = ["risk.view_risksettings", "risk.view_currencythreshold", "risk.view_blocklistentry", "risk.view_riskassessment"]
BLOCKLIST = ["risk.add_blocklistentry", "risk.change_blocklistentry"]
SETTINGS = ["risk.change_risksettings", "risk.add_currencythreshold", "risk.change_currencythreshold"]
GRANTS: dict[str, list[str]] = {
    "finance_agent": [*VIEW, *BLOCKLIST, "risk.review_payment"],
    "finance_lead": [*VIEW, *BLOCKLIST, *SETTINGS, "risk.review_payment"],
    "auditor": VIEW,
}


def seed_defaults(apps, schema_editor):
    RiskSettings = apps.get_model("risk", "RiskSettings")
    CurrencyThreshold = apps.get_model("risk", "CurrencyThreshold")
    RiskSettings.objects.get_or_create(pk=1)
    for code, (review, block, first_seen) in DEFAULT_THRESHOLDS.items():
        CurrencyThreshold.objects.get_or_create(
            currency=code, defaults={"review_amount": review, "block_amount": block, "first_seen_amount": first_seen}
        )


def grant_permissions(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    app_config = apps.get_app_config("risk")
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
    apps.get_model("auth", "Permission").objects.filter(content_type__app_label="risk").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("risk", "0001_initial"),
        ("accounts", "0002_staff_groups"),
    ]

    operations = [
        migrations.RunPython(seed_defaults, migrations.RunPython.noop),
        migrations.RunPython(grant_permissions, revoke_permissions),
    ]
