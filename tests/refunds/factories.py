"""Factories for refunds and their status history."""

import factory

from payments.models import ChangeSource
from refunds.models import Refund, RefundStatusChange
from refunds.states import RefundStatus
from tests.payments.factories import PaymentFactory


class RefundFactory(factory.django.DjangoModelFactory):
    """A refund row (pending by default) of a captured payment; it does not touch the payment's amounts.

    Traits: succeeded (with a gateway reference), failed, canceled.
    """

    class Meta:
        model = Refund

    class Params:
        succeeded = factory.Trait(
            status=RefundStatus.SUCCEEDED, gateway_reference=factory.Sequence(lambda n: f"re_sim_factory_{n}")
        )
        failed = factory.Trait(status=RefundStatus.FAILED, failure_reason="charge_for_pending_refund_disputed")
        canceled = factory.Trait(status=RefundStatus.CANCELED)

    payment = factory.SubFactory(PaymentFactory, succeeded=True)
    amount = factory.LazyAttribute(lambda refund: refund.payment.amount)
    currency = factory.SelfAttribute("payment.currency")
    status = RefundStatus.PENDING


class RefundStatusChangeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RefundStatusChange

    refund = factory.SubFactory(RefundFactory)
    from_status = ""
    to_status = factory.SelfAttribute("refund.status")
    source = ChangeSource.API
