"""`audit.diff.creation_diff` is auditlog's own diff for a creation, on every model registered with auditlog."""

from datetime import UTC, datetime

import pytest
from auditlog.diff import model_instance_diff
from auditlog.registry import auditlog
from django.contrib.auth.models import Group
from django.db.models import AutoField, BigAutoField
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit import diff as audit_diff
from audit.diff import creation_diff
from tests.accounts.factories import UserFactory
from tests.audit.factories import ApprovalRequestFactory
from tests.payments.factories import PaymentFactory
from tests.refunds.factories import RefundFactory
from tests.risk.factories import RiskSettingsFactory

pytestmark = pytest.mark.django_db


def _same(instance) -> None:
    for use_json in (False, True):
        theirs = model_instance_diff(None, instance, use_json_for_changes=use_json)
        assert creation_diff(instance, use_json_for_changes=use_json) == theirs


@pytest.mark.parametrize("model", sorted(auditlog.get_models(), key=lambda model: model._meta.label))
def test_every_registered_model_diffs_as_auditlog_does(model):
    first, second = model(), model()
    if isinstance(model._meta.pk, AutoField | BigAutoField):
        first.pk, second.pk = 7, 8

    _same(first)
    _same(second)  # the second time, with what the first worked out kept


def test_saved_rows_with_relations_diff_as_auditlog_does():
    payment = PaymentFactory(metadata={"order": "A-1", "lines": [1, 2]}, customer_email="ada@example.com")
    refund = RefundFactory(payment=payment)

    for instance in (payment, refund, payment.client, UserFactory(is_staff=True), ApprovalRequestFactory()):
        _same(instance)
    _same(RiskSettingsFactory())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    amount=st.integers(min_value=0, max_value=10**12),
    text=st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40),
    metadata=st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=8), st.none()), max_size=4),
    moment=st.one_of(st.none(), st.datetimes(timezones=st.just(UTC), min_value=datetime(2000, 1, 1))),  # noqa: DTZ001 - hypothesis bounds are naive
    flag=st.booleans(),
)
def test_any_payment_values_diff_as_auditlog_does(amount, text, metadata, moment, flag):
    payment = PaymentFactory.build(
        pk=11, amount=amount, description=text, order_id=text[:20], metadata=metadata, off_session=flag
    )
    payment.disputed_at = moment

    _same(payment)


def test_masked_fields_are_masked_by_auditlogs_function():
    registered = auditlog._registry[Group].copy()
    auditlog.register(Group, mask_fields=["name"], m2m_fields={"permissions"})
    audit_diff._plans.pop(Group, None)
    try:
        group = Group(pk=3, name="finance-reviewers")
        _same(group)
        assert creation_diff(group)["name"] == ("**ne", "********reviewers")
    finally:
        auditlog._registry[Group] = registered
        audit_diff._plans.pop(Group, None)
