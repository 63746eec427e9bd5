"""`payments.saving.payment_insert`: the row and the audit entry `Payment.objects.create` writes, in fewer steps."""

import pytest
from auditlog.models import LogEntry
from django.db.models.signals import post_save, pre_save

from config.encryption import email_index, ip_index
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
