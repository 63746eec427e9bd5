"""Stripe's customer and payment-method events, signed, repeated and out of order: applied once, stale never wins.

The simulator plays Stripe's side (a change in the Dashboard is a call on the simulator, then the event)."""

import pytest

from customers.models import Customer, CustomerGatewayToken, PaymentMethod
from events.models import Event
from tests.customers.conftest import list_methods, put_customer
from tests.webhooks import payloads
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db


def _row(event: dict) -> tuple[str, str]:
    row = WebhookEvent.objects.get(stripe_id=event["id"])
    return row.status, row.ignored_reason


def _customer_reference(customer_id: str = "cus_42") -> str:
    return CustomerGatewayToken.objects.get(customer__customer_id=customer_id).reference


def _method_object(reference: str, customer: str | None) -> dict:
    """A PaymentMethod (https://docs.stripe.com/api/payment_methods/object)."""
    return {
        "id": reference,
        "object": "payment_method",
        "type": "card",
        "customer": customer,
        "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034, "funding": "credit"},
        "created": 1700000000,
        "livemode": False,
    }


def _customer_object(reference: str, *, email: str = "", deleted: bool = False) -> dict:
    return {"id": reference, "object": "customer", "email": email, "name": None, "deleted": deleted, "metadata": {}}


def _dashboard_attach(simulator, customer_reference: str, token: str = "pm_card_visa") -> str:  # noqa: S107
    return simulator.attach_payment_method(
        payment_method=token, customer_reference=customer_reference, idempotency_key=f"dashboard:{token}"
    ).reference


def test_a_card_saved_in_the_dashboard_is_recorded_once_however_often_the_event_comes(storefront, simulator, deliver):
    put_customer(storefront)
    reference = _dashboard_attach(simulator, _customer_reference())
    attached = payloads.event("payment_method.attached", _method_object(reference, _customer_reference()))

    deliver(attached)
    deliver(attached)  # the same delivery again
    again = payloads.event("payment_method.attached", _method_object(reference, _customer_reference()))
    deliver(again)  # another event about the same attach

    methods = list_methods(storefront).json()["results"]
    assert [(m["gateway_reference"], m["card"]["last4"]) for m in methods] == [(reference, "4242")]
    assert Event.objects.filter(type="payment_method.attached").count() == 1
    assert (_row(attached), _row(again)) == (("processed", ""), ("ignored", "stale"))
    assert WebhookEvent.objects.filter(stripe_id=attached["id"]).count() == 1


def test_an_attached_event_after_the_detached_one_saves_nothing(storefront, simulator, deliver):
    put_customer(storefront)
    customer = _customer_reference()
    reference = _dashboard_attach(simulator, customer)
    simulator.detach_payment_method(payment_method=reference, idempotency_key="dashboard:detach")
    detached = payloads.event("payment_method.detached", _method_object(reference, None))
    attached = payloads.event("payment_method.attached", _method_object(reference, customer))

    deliver(detached)  # out of order: the detach arrives first
    deliver(attached)

    assert list_methods(storefront).json()["results"] == []
    assert not PaymentMethod.objects.exists()
    assert not Event.objects.filter(type__startswith="payment_method.").exists()


def test_a_method_detached_in_the_dashboard_is_detached_here_once(storefront, saved_card, simulator, deliver):
    method = saved_card(set_default=True)
    simulator.detach_payment_method(payment_method=method["gateway_reference"], idempotency_key="dashboard:detach")
    detached = payloads.event("payment_method.detached", _method_object(method["gateway_reference"], None))
    late_attached = payloads.event(
        "payment_method.attached", _method_object(method["gateway_reference"], _customer_reference())
    )

    deliver(detached)
    deliver(detached)
    deliver(late_attached)

    stored = PaymentMethod.objects.get(public_id=method["id"])
    assert stored.status == "detached"
    assert Customer.objects.get(customer_id="cus_42").default_payment_method is None
    assert Event.objects.filter(subject_id=method["id"], type="payment_method.detached").count() == 1
    assert _row(late_attached) == ("ignored", "stale")


def test_setup_intent_succeeded_twice_saves_the_card_once(storefront, simulator, deliver):
    setup = storefront.post("/api/v1/customers/cus_42/setup_intents/", {}, format="json").json()
    confirmed = simulator.confirm_setup_intent(reference=setup["id"], payment_method="pm_card_mastercard")
    succeeded = payloads.event(
        "setup_intent.succeeded",
        {
            "id": setup["id"],
            "object": "setup_intent",
            "status": "succeeded",
            "customer": _customer_reference(),
            "payment_method": confirmed.payment_method,
        },
    )

    deliver(succeeded)
    deliver(payloads.event("setup_intent.succeeded", succeeded["data"]["object"]))

    assert [m["card"]["brand"] for m in list_methods(storefront).json()["results"]] == ["mastercard"]
    assert Event.objects.filter(type="payment_method.attached").count() == 1


def test_customer_updated_applies_what_the_gateway_holds_now_whatever_the_order(storefront, simulator, deliver):
    put_customer(storefront, email="first@example.com", name="Ada")
    reference = _customer_reference()
    for email in ("second@example.com", "third@example.com"):
        simulator.update_customer(
            reference=reference,
            email=email,
            name="Ada",
            metadata={},
            default_payment_method=None,
            idempotency_key=f"dashboard:{email}",
        )
    newer = payloads.event("customer.updated", _customer_object(reference, email="third@example.com"))
    older = payloads.event("customer.updated", _customer_object(reference, email="second@example.com"))

    deliver(newer)
    deliver(older)  # late: its snapshot is stale, the gateway's state is not

    assert storefront.get("/api/v1/customers/cus_42/").json()["email"] == "third@example.com"
    customer = Customer.objects.get(customer_id="cus_42")
    assert Event.objects.filter(subject_id=customer.public_id, type="customer.updated").count() == 1


def test_customer_deleted_detaches_its_methods_and_a_late_update_changes_nothing(
    storefront, saved_card, simulator, deliver
):
    method = saved_card(set_default=True)
    reference = _customer_reference()
    simulator.delete_customer(reference=reference, idempotency_key="dashboard:delete")
    deleted = payloads.event("customer.deleted", _customer_object(reference, deleted=True))
    late_update = payloads.event("customer.updated", _customer_object(reference, email="late@example.com"))

    deliver(deleted)
    deliver(deleted)
    deliver(late_update)

    assert storefront.get("/api/v1/customers/cus_42/").status_code == 404
    assert PaymentMethod.objects.get(public_id=method["id"]).status == "detached"
    customer = Customer.objects.get(customer_id="cus_42")
    assert list(Event.objects.filter(subject_id=customer.public_id).values_list("type", flat=True)) == [
        "customer.created",
        "customer.updated",
        "customer.deleted",
    ]
    assert _row(late_update) == ("ignored", "unknown_object")

    # Made again by a PUT: a new gateway customer, nothing of the old one.
    again = put_customer(storefront, email="back@example.com")
    assert again.status_code == 201
    assert again.json()["gateway_reference"] not in (None, reference)
    assert again.json()["default_payment_method"] is None


def test_events_for_customers_we_do_not_know_are_ignored(deliver):
    unknown = payloads.event("customer.updated", _customer_object("cus_unknown"))
    method = payloads.event("payment_method.attached", _method_object("pm_unknown", "cus_unknown"))

    deliver(unknown)
    deliver(method)

    assert (_row(unknown), _row(method)) == (("ignored", "unknown_object"), ("ignored", "unknown_object"))
    assert not Customer.objects.exists()
