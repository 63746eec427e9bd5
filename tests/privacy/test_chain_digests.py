"""The staff log chains a digest of personal values, so erasing one leaves `audit_verify` passing."""

import pytest

from audit.models import StaffAction
from audit.services import ChainBreak, audit_verify, staff_action_erase, staff_action_hash, staff_action_record
from audit.services.chain import HASHED_FIELDS, personal_digests_of

pytestmark = pytest.mark.django_db


def _edit(actor, email="ada@example.com"):
    return staff_action_record(
        actor=actor,
        action="edit_customer",
        object_type="customer",
        object_id="cu_1",
        before={"email": email, "status": "active", "billing_details": {"city": "London"}},
        after={"nested": {"customer_ip": "203.0.113.9"}, "amount": 100},
    )


def test_personal_values_are_stored_with_their_digests_and_erasing_them_keeps_the_chain(lead):
    row = _edit(lead)
    _edit(lead, email="bob@example.com")
    assert set(row.personal_digests) == {"/before/email", "/before/billing_details", "/after/nested/customer_ip"}

    assert staff_action_erase(action=row) is True

    row.refresh_from_db()
    assert row.before == {"email": "[erased]", "status": "active", "billing_details": "[erased]"}
    assert row.after == {"nested": {"customer_ip": "[erased]"}, "amount": 100}
    assert audit_verify() is None
    assert staff_action_erase(action=row) is False  # once


def test_a_personal_value_changed_to_anything_but_erased_breaks_the_chain(lead):
    row = _edit(lead)

    StaffAction.objects.filter(pk=row.pk).update(before={**row.before, "email": "mallory@example.com"})

    assert audit_verify() == ChainBreak(row_id=row.pk, problem="altered: /before/email does not match its digest")


def test_a_non_personal_value_changed_still_breaks_the_chain(lead):
    row = _edit(lead)

    StaffAction.objects.filter(pk=row.pk).update(before={**row.before, "status": "closed"})

    assert audit_verify() == ChainBreak(row_id=row.pk, problem="altered: its content does not match its hash")


def test_rows_written_before_the_digests_still_verify(lead):
    # given a row chained over its values as they are (the hash of old rows), with no digests
    row = _edit(lead)
    content = {field: getattr(row, field) for field in HASHED_FIELDS}
    legacy_hash = staff_action_hash(content=content, previous_hash=row.previous_hash)
    StaffAction.objects.filter(pk=row.pk).update(personal_digests={}, hash=legacy_hash)

    assert audit_verify() is None
    row.refresh_from_db()
    assert staff_action_erase(action=row) is False  # nothing it can erase without breaking the chain
    assert row.before["email"] == "ada@example.com"


def test_rows_without_personal_values_hash_as_before(lead):
    row = staff_action_record(actor=lead, action="refund", object_type="payment", object_id="pay_1", after={"a": 1})

    content = {field: getattr(row, field) for field in HASHED_FIELDS}
    assert row.personal_digests == {} == personal_digests_of(before=row.before, after=row.after)
    assert staff_action_hash(content=content, previous_hash=row.previous_hash) == row.hash
