"""ReconciliationRun and Discrepancy, taken over from `audit` in state only (their tables keep their names).

audit/migrations/0002_move_reconciliation removed them from audit's state; nothing changes in the
database schema. The content types are renamed (app_label audit → reconciliation), so the
permissions keep their rows and ids: group and user grants (accounts/0002_staff_groups gives
`run_reconciliation_fix` and `change_discrepancy` to finance leads) and log entries follow the models.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

MODELS = ("reconciliationrun", "discrepancy")


def _move_content_types(apps, from_label: str, to_label: str) -> None:
    """Give the models' content types their new app label, keeping their ids (and so every grant and log entry).

    A content type may already exist under the new label: `migrate` back then forward again makes one
    (post_migrate creates the content types of the models as the code declares them). It is merged into
    the moved one (its permissions by codename, with their grants; every row pointing at it), then dropped.
    """
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MODELS:
        moved = ContentType.objects.filter(app_label=from_label, model=model).first()
        if moved is None:
            continue
        duplicate = ContentType.objects.filter(app_label=to_label, model=model).first()
        if duplicate is not None:
            _merge_content_type(apps, duplicate, into=moved)
        moved.app_label = to_label
        moved.save(update_fields=["app_label"])
    ContentType.objects.clear_cache()


def _merge_content_type(apps, duplicate, *, into) -> None:
    Permission = apps.get_model("auth", "Permission")
    grants = [  # (through model, holder column, permission column): groups' and users' permissions
        (field.remote_field.through, field.m2m_field_name(), field.m2m_reverse_field_name())
        for model in apps.get_models()
        for field in model._meta.local_many_to_many
        if field.related_model._meta.label_lower == "auth.permission"
    ]
    for permission in Permission.objects.filter(content_type=duplicate):
        kept = Permission.objects.filter(content_type=into, codename=permission.codename).first()
        if kept is None:
            permission.content_type = into
            permission.save(update_fields=["content_type"])
            continue
        for through, holder, column in grants:
            holders = through.objects.filter(**{column: kept}).values_list(holder, flat=True)
            through.objects.filter(**{column: permission, f"{holder}__in": list(holders)}).delete()
            through.objects.filter(**{column: permission}).update(**{column: kept})
        permission.delete()
    for model in apps.get_models():  # log entries (admin, auditlog) and any other row naming a content type
        for field in model._meta.concrete_fields:
            if model is Permission or not field.many_to_one:
                continue
            if field.related_model._meta.label_lower == "contenttypes.contenttype":
                model._base_manager.filter(**{field.name: duplicate}).update(**{field.name: into})
    duplicate.delete()


def forwards(apps, schema_editor):
    _move_content_types(apps, "audit", "reconciliation")


def backwards(apps, schema_editor):
    _move_content_types(apps, "reconciliation", "audit")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("audit", "0002_move_reconciliation"),
        ("payments", "0003_attention_and_dead_letters"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ReconciliationRun",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"),
                        ),
                        ("gateway", models.CharField(max_length=32)),
                        ("window_start", models.DateTimeField()),
                        ("window_end", models.DateTimeField()),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("running", "Running"),
                                    ("clean", "Clean"),
                                    ("unresolved", "Discrepancies open"),
                                    ("failed", "Failed"),
                                ],
                                default="running",
                                max_length=16,
                            ),
                        ),
                        ("fix", models.BooleanField(default=False, help_text="Whether safe corrections were applied.")),
                        ("gateway_records", models.PositiveIntegerField(default=0)),
                        ("our_records", models.PositiveIntegerField(default=0)),
                        ("matched", models.PositiveIntegerField(default=0)),
                        ("discrepancies_found", models.PositiveIntegerField(default=0)),
                        ("discrepancies_fixed", models.PositiveIntegerField(default=0)),
                        ("started_at", models.DateTimeField(auto_now_add=True)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        ("duration_seconds", models.FloatField(blank=True, null=True)),
                        ("error", models.TextField(blank=True, default="")),
                    ],
                    options={
                        "db_table": "audit_reconciliationrun",
                        "ordering": ("-started_at", "-id"),
                        "permissions": [("run_reconciliation_fix", "Can apply reconciliation fixes")],
                    },
                ),
                migrations.CreateModel(
                    name="Discrepancy",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"),
                        ),
                        (
                            "kind",
                            models.CharField(
                                choices=[
                                    ("missing_here", "Missing here"),
                                    ("missing_at_gateway", "Missing at the gateway"),
                                    ("amount", "Amount differs"),
                                    ("currency", "Currency differs"),
                                    ("status", "Status differs"),
                                    ("captured", "Captured amount differs"),
                                    ("refunded", "Refunded amount differs"),
                                ],
                                max_length=32,
                            ),
                        ),
                        (
                            "state",
                            models.CharField(
                                choices=[
                                    ("open", "Open"),
                                    ("fixed", "Fixed automatically"),
                                    ("resolved", "Resolved by staff"),
                                    ("accepted", "Accepted by staff"),
                                ],
                                default="open",
                                max_length=16,
                            ),
                        ),
                        ("gateway_reference", models.CharField(blank=True, default="", max_length=255)),
                        ("ours", models.JSONField(blank=True, default=dict, help_text="Our values (minor units).")),
                        (
                            "theirs",
                            models.JSONField(blank=True, default=dict, help_text="The gateway's values (minor units)."),
                        ),
                        ("note", models.TextField(blank=True, default="")),
                        ("resolved_at", models.DateTimeField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "payment",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                to="payments.payment",
                            ),
                        ),
                        (
                            "resolved_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "run",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="discrepancies",
                                to="reconciliation.reconciliationrun",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "audit_discrepancy",
                        "verbose_name_plural": "discrepancies",
                        "ordering": ("-created_at", "-id"),
                        "indexes": [
                            models.Index(fields=["state", "kind"], name="discrepancy_state_kind_idx"),
                            models.Index(fields=["run", "state"], name="discrepancy_run_idx"),
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(forwards, backwards),
    ]
