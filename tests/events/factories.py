"""Factories for outbox events."""

import factory
from django.utils import timezone

from events.models import Event
from tests.accounts.factories import UserFactory
from tests.payments.factories import PaymentFactory


class EventFactory(factory.django.DjangoModelFactory):
    """An outbox event about a payment (a new one unless `payment=` is given), owned by the payment's client.

    Passing `subject_id=` (with `client=`) makes no payment. `published=True` for one the relay published.
    """

    class Meta:
        model = Event

    class Params:
        payment = factory.SubFactory(PaymentFactory)
        published = factory.Trait(published_at=factory.LazyFunction(timezone.now), publish_attempts=1)

    type = "payment.initiated"
    client = factory.Maybe("payment", factory.SelfAttribute("payment.client"), factory.SubFactory(UserFactory))
    subject_type = "payment"
    subject_id = factory.Maybe(
        "payment", factory.SelfAttribute("payment.public_id"), factory.Sequence(lambda n: f"pay_factory_{n}")
    )
    data = factory.LazyAttribute(lambda event: {"id": event.subject_id, "object": event.subject_type})

    @classmethod
    def _generate(cls, strategy, params):
        if "subject_id" in params:  # the subject is given: do not make a payment for it
            params.setdefault("payment", None)
        return super()._generate(strategy, params)
