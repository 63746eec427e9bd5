"""Factories for four-eyes approval requests and (through the hash chain's service) staff actions."""

from typing import Any

import factory
from django.utils import timezone

from audit.models import ApprovalRequest, ApprovalStatus, StaffAction
from audit.services import staff_action_record
from tests.accounts.factories import StaffUserFactory


class ApprovalRequestFactory(factory.django.DjangoModelFactory):
    """A request for a refund of a payment, pending by default; `approved=True` or `rejected=True` for decided ones.

    It names no real payment unless `object_id` is given, so approving one runs nothing useful: tests of the
    approval itself open requests through the owning app's service.
    """

    class Meta:
        model = ApprovalRequest

    class Params:
        approved = factory.Trait(
            status=ApprovalStatus.APPROVED,
            decided_by=factory.SubFactory(StaffUserFactory),
            decided_at=factory.LazyFunction(timezone.now),
        )
        rejected = factory.Trait(
            status=ApprovalStatus.REJECTED,
            decided_by=factory.SubFactory(StaffUserFactory),
            decided_at=factory.LazyFunction(timezone.now),
            decision_reason="Not justified",
        )

    kind = "refund"
    object_type = "payment"
    object_id = factory.Sequence(lambda n: f"pay_factory_{n}")
    params = factory.LazyFunction(lambda: {"amount": 60_000, "currency": "usd", "refund_reason": ""})
    reason = "Goodwill"
    status = ApprovalStatus.PENDING
    requested_by = factory.SubFactory(StaffUserFactory)  # another user than any decider: approval_not_by_requester


class StaffActionFactory(factory.django.DjangoModelFactory):
    """A staff action appended to the hash chain by `staff_action_record` (created only: a built row has no hash).

    Tests that tamper with the chain on purpose change the rows afterwards, with `update()`.
    """

    class Meta:
        model = StaffAction

    actor = factory.SubFactory(StaffUserFactory)
    action = "refund"
    object_type = "payment"
    object_id = factory.Sequence(lambda n: f"pay_factory_{n}")
    reason = ""

    @classmethod
    def _build(cls, model_class: type[StaffAction], *args: Any, **kwargs: Any) -> StaffAction:
        raise TypeError("Staff actions are hash-chained: create them (staff_action_record), never build them.")

    @classmethod
    def _create(cls, model_class: type[StaffAction], *args: Any, **kwargs: Any) -> StaffAction:
        return staff_action_record(**kwargs)
