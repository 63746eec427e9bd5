"""The staff action log is a hash chain: audit_verify names the first row altered or removed."""

import pytest
from django.core.management import CommandError, call_command

from accounts.models import User
from audit.models import StaffAction
from audit.services.chain import (
    GENESIS_HASH,
    HASHED_FIELDS,
    ChainBreak,
    audit_verify,
    staff_action_hash,
    staff_action_record,
)
from tests.helpers import run_in_threads


def _record(actor: User, number: int) -> StaffAction:
    return staff_action_record(
        actor=actor,
        action="refund",
        object_type="payment",
        object_id=f"pay_{number}",
        reason=f"reason {number}",
        before={"amount_refunded": 0},
        after={"amount": number * 100, "note": "ünïcode"},
        remote_addr="127.0.0.1",
    )


@pytest.fixture
def chain(lead) -> list[StaffAction]:
    return [_record(lead, number) for number in range(1, 5)]


def test_first_row_starts_from_zeros_and_each_row_links_to_the_previous(chain):
    rows = list(StaffAction.objects.order_by("id"))

    assert rows[0].previous_hash == GENESIS_HASH
    assert [row.previous_hash for row in rows[1:]] == [row.hash for row in rows[:-1]]
    assert len({row.hash for row in rows}) == 4


def test_intact_chain_verifies(chain, capsys):
    assert audit_verify() is None

    call_command("audit_verify")

    assert capsys.readouterr().out == "Audit trail intact: 4 staff actions verified.\n"


def test_empty_chain_verifies(db):
    assert audit_verify() is None


def test_edited_row_is_named(chain):
    # given a row changed behind the service's back
    StaffAction.objects.filter(pk=chain[2].pk).update(reason="nothing to see")

    # then the chain breaks at that very row
    assert audit_verify() == ChainBreak(row_id=chain[2].pk, problem="altered: its content does not match its hash")
    with pytest.raises(CommandError) as raised:
        call_command("audit_verify")
    assert str(raised.value) == (
        f"Audit trail broken at StaffAction {chain[2].pk}: altered: its content does not match its hash"
    )
    assert raised.value.returncode == 1


def test_edited_json_field_is_named(chain):
    StaffAction.objects.filter(pk=chain[1].pk).update(after={"amount": 1, "note": "ünïcode"})

    assert audit_verify() == ChainBreak(row_id=chain[1].pk, problem="altered: its content does not match its hash")


def test_deleted_row_is_detected_at_the_next_row(chain):
    StaffAction.objects.filter(pk=chain[1].pk).delete()

    assert audit_verify() == ChainBreak(
        row_id=chain[2].pk,
        problem=(
            f"previous_hash matches no row: a row between {chain[0].pk} and {chain[2].pk} "
            f"was removed, or {chain[0].pk} was rewritten"
        ),
    )
    with pytest.raises(CommandError, match=f"StaffAction {chain[2].pk}: previous_hash matches no row"):
        call_command("audit_verify")


def test_deleted_first_row_is_detected(chain):
    StaffAction.objects.filter(pk=chain[0].pk).delete()

    assert audit_verify() == ChainBreak(
        row_id=chain[1].pk,
        problem="previous_hash is not the start of the chain: the rows before it were removed",
    )


def test_rewritten_row_with_recomputed_hash_breaks_the_next_link(chain):
    # given someone who edits a row and recomputes its hash as well
    row = StaffAction.objects.get(pk=chain[1].pk)
    content = {field: getattr(row, field) for field in HASHED_FIELDS}
    content["reason"] = "nothing to see"
    forged = staff_action_hash(content=content, previous_hash=row.previous_hash)
    StaffAction.objects.filter(pk=row.pk).update(reason="nothing to see", hash=forged)

    # then the next row no longer links to it
    assert audit_verify() == ChainBreak(
        row_id=chain[2].pk,
        problem=(
            f"previous_hash matches no row: a row between {chain[1].pk} and {chain[2].pk} "
            f"was removed, or {chain[1].pk} was rewritten"
        ),
    )


@pytest.mark.django_db(transaction=True)
def test_concurrent_staff_actions_keep_one_valid_chain(make_staff):
    # given 20 staff actions recorded at the same moment from 20 connections
    actor = make_staff("lead-busy", "finance_lead")

    results = run_in_threads([lambda number=number: _record(actor, number) for number in range(20)])

    # then every one was recorded, each chained to a different predecessor, and the chain holds
    assert [type(result) for result in results] == [StaffAction] * 20
    rows = list(StaffAction.objects.order_by("id"))
    assert len(rows) == 20
    assert len({row.previous_hash for row in rows}) == 20
    assert audit_verify() is None
