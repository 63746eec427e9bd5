"""The move from `audit`: same tables, permissions under `reconciliation`, grants kept across the migration."""

import pytest
from auditlog.models import LogEntry as AuditLogEntry
from auditlog.registry import auditlog
from django.apps import apps
from django.contrib.admin.models import ADDITION
from django.contrib.admin.models import LogEntry as AdminLogEntry
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.management import create_contenttypes
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from accounts.models import User
from reconciliation.models import Discrepancy, DiscrepancyKind, ReconciliationRun
from reconciliation.services import discrepancy_close
from tests.accounts.factories import StaffUserFactory
from tests.reconciliation.factories import DiscrepancyFactory

pytestmark = pytest.mark.django_db

MOVED = ("reconciliationrun", "discrepancy")


@pytest.fixture
def fresh_content_types():
    ContentType.objects.clear_cache()
    yield
    ContentType.objects.clear_cache()  # the test's rows are rolled back; so must the cache be


def _migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([target])


def _labels(codename: str) -> list[str]:
    return list(Permission.objects.filter(codename=codename).values_list("content_type__app_label", flat=True))


def test_the_models_keep_audits_tables_and_their_permissions_are_reconciliations():
    assert ReconciliationRun._meta.db_table == "audit_reconciliationrun"
    assert Discrepancy._meta.db_table == "audit_discrepancy"
    assert {index.name for index in Discrepancy._meta.indexes} == {"discrepancy_state_kind_idx", "discrepancy_run_idx"}
    assert _labels("run_reconciliation_fix") == ["reconciliation"]
    assert _labels("change_discrepancy") == ["reconciliation"]
    assert not ContentType.objects.filter(app_label="audit", model__in=MOVED).exists()
    lead = {
        f"{app}.{codename}"
        for app, codename in Group.objects.get(name="finance_lead").permissions.values_list(
            "content_type__app_label", "codename"
        )
    }
    assert {"reconciliation.run_reconciliation_fix", "reconciliation.change_discrepancy"} <= lead
    assert {"reconciliation.view_discrepancy", "reconciliation.view_reconciliationrun"} <= lead


def test_closing_a_discrepancy_is_in_the_audit_log():
    staff = StaffUserFactory()
    discrepancy = DiscrepancyFactory(kind=DiscrepancyKind.AMOUNT)

    discrepancy_close(discrepancy_id=discrepancy.pk, actor=staff, reason="Known test payment")

    assert auditlog.contains(Discrepancy)
    entry = AuditLogEntry.objects.get_for_object(discrepancy).order_by("-id").first()
    assert entry.changes_dict["state"] == ["open", "resolved"]


def test_migrating_back_and_forth_keeps_content_types_permissions_and_grants(fresh_content_types):
    # given the grants of an existing database: a group and a user hold reconciliation permissions
    fix = Permission.objects.get(content_type__app_label="reconciliation", codename="run_reconciliation_fix")
    group = Group.objects.create(name="recon-fixers")
    group.permissions.add(fix)
    user = StaffUserFactory(permissions=["reconciliation.change_discrepancy"])
    types = {ct.model: ct.pk for ct in ContentType.objects.filter(app_label="reconciliation", model__in=MOVED)}

    # when reconciliation's migration is unapplied: the content types go back to audit, with their ids
    with connection.cursor() as cursor:  # audit's later migrations index a table these rows' FKs check at commit
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    _migrate(("audit", "0001_initial"))
    assert {ct.model: ct.pk for ct in ContentType.objects.filter(app_label="audit", model__in=MOVED)} == types
    assert _labels("run_reconciliation_fix") == ["audit"]
    # and post_migrate of that `migrate` creates the content types the code declares (duplicates, no grants)
    ContentType.objects.clear_cache()
    create_contenttypes(apps.get_app_config("reconciliation"), verbosity=0)
    create_permissions(apps.get_app_config("reconciliation"), verbosity=0)
    duplicate = ContentType.objects.get(app_label="reconciliation", model="discrepancy")
    entry = AdminLogEntry.objects.create(
        user=user, content_type=duplicate, object_id="1", object_repr="d", action_flag=ADDITION
    )

    # when it is applied again
    _migrate(("reconciliation", "0001_initial"))

    # then the original content types are reconciliation's again, merged with the duplicates
    ContentType.objects.clear_cache()
    assert {ct.model: ct.pk for ct in ContentType.objects.filter(app_label="reconciliation", model__in=MOVED)} == types
    assert not ContentType.objects.filter(app_label="audit", model__in=MOVED).exists()
    assert _labels("run_reconciliation_fix") == ["reconciliation"]
    assert _labels("change_discrepancy") == ["reconciliation"]
    assert list(group.permissions.all()) == [fix]
    assert user.user_permissions.get().codename == "change_discrepancy"
    assert User.objects.get(pk=user.pk).has_perm("reconciliation.change_discrepancy")
    entry.refresh_from_db()
    assert entry.content_type_id == types["discrepancy"]
