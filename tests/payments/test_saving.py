"""`payments.saving.payment_insert`: the row and the audit entry `Payment.objects.create` writes, in fewer steps."""

import threading

import pytest
from auditlog.models import LogEntry
from django.db import connection, connections
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from config.encryption import email_index, ip_index
from events.models import Event
from payments.models import Payment
from payments.saving import payment_insert
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db


def _fields(client) -> dict:
    return {
        "client": client,
        "amount": 2000,
        "currency": "usd",
        "customer_id": "cus_1",
        "customer_email": "ann@example.com",
        "customer_ip": "203.0.113.7",
        "metadata": {"order": "A-1"},
        "payment_method": "pm_card_visa",
        "status": "requires_confirmation",
        "gateway": "simulator",
    }


def test_auditlogs_receivers_are_the_only_ones_payment_insert_stands_in_for():
    # A new receiver on Payment would be skipped by payment_insert: this test names what it replaces.
    assert [r.__name__ for r in pre_save._live_receivers(Payment)[0]] == ["log_update"]
    assert [r.__name__ for r in post_save._live_receivers(Payment)[0]] == ["log_create"]


def test_the_row_and_its_creation_entry_are_those_create_writes():
    client = UserFactory()

    made = Payment.objects.create(**_fields(client))
    fast = payment_insert(Payment(**_fields(client)))

    ours, theirs = Payment.objects.get(pk=fast.pk), Payment.objects.get(pk=made.pk)
    differs = {"id", "public_id", "created_at", "updated_at"}
    assert {f.attname: getattr(ours, f.attname) for f in Payment._meta.concrete_fields if f.attname not in differs} == {
        f.attname: getattr(theirs, f.attname) for f in Payment._meta.concrete_fields if f.attname not in differs
    }
    assert ours.customer_email_index == email_index("ann@example.com")
    assert ours.customer_ip_index == ip_index("203.0.113.7")
    entry, expected = LogEntry.objects.get_for_object(ours).get(), LogEntry.objects.get_for_object(theirs).get()
    assert entry.action == LogEntry.Action.CREATE
    skip = {"id", "public_id", "created_at"}
    assert {k: v for k, v in entry.changes_dict.items() if k not in skip} == {
        k: v for k, v in expected.changes_dict.items() if k not in skip
    }
    assert entry.changes_dict["public_id"] == ["None", fast.public_id]


def _changed_elsewhere(public_id: str, note: str) -> None:
    """Another connection writes the payment and commits (a webhook, a worker, staff), as every write does."""

    def write() -> None:
        try:
            Payment.objects.filter(public_id=public_id).update(description=note, updated_at=timezone.now())
        finally:
            connections.close_all()

    thread = threading.Thread(target=write)
    thread.start()
    thread.join(10)


@pytest.mark.django_db(transaction=True)
def test_a_payment_changed_while_its_gateway_call_was_out_is_applied_under_its_lock_once(storefront):
    """The answer's transaction is one statement (the conditional UPDATE with the rows written after it): when the
    row changed meanwhile, that statement matches nothing, the transaction rolls back, and the answer is applied
    again to the row locked and read: one history row, one event, one audit entry of the change, the key answered."""
    changed = []

    def someone_writes_first(execute, sql, params, many, context):
        if sql.startswith('WITH r0 AS (UPDATE "payments_payment"') and not changed:
            changed.append(next(value for value in params if str(value).startswith("pay_")))  # the audit entry's repr
            _changed_elsewhere(changed[0], "changed meanwhile")
        return execute(sql, params, many, context)

    body = {"amount": 2000, "currency": "usd", "customer_id": "c", "payment_method": "pm_card_visa", "confirm": True}
    with connection.execute_wrapper(someone_writes_first):
        response = storefront.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY="raced")

    assert response.status_code == 201, response.json()
    assert changed
    payment = Payment.objects.get(public_id=response.json()["id"])
    assert payment.public_id == changed[0]
    assert (payment.status, payment.description, payment.pending_operation) == ("succeeded", "changed meanwhile", "")
    assert response.json()["status"] == "succeeded"
    history = list(payment.status_changes.order_by("pk").values_list("from_status", "to_status"))
    assert history == [("", "requires_confirmation"), ("requires_confirmation", "succeeded")]
    assert Event.objects.filter(subject_id=payment.public_id, type="payment.captured").count() == 1
    entries = LogEntry.objects.get_for_object(payment).filter(action=LogEntry.Action.UPDATE)
    assert [entry.changes_dict["status"] for entry in entries] == [["requires_confirmation", "succeeded"]]
    again = storefront.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY="raced")
    assert again.json() == response.json()
    assert again["Idempotent-Replayed"] == "true"
