"""Moving the outbox to the events app: the rows stay, and each gets its owner and subject from its payment."""

import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from events.models import Event
from tests.accounts.factories import UserFactory
from tests.payments.factories import PaymentFactory

pytestmark = pytest.mark.django_db

BEFORE = [("events", "0001_initial")]
AFTER = [("events", "0002_client_and_subject")]
LATEST = [("events", "0003_schema_version_and_safe_payloads")]


def _migrate(targets: list[tuple[str, str]]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def test_events_written_before_the_move_get_their_payments_client_and_id():
    # given the table as it was, with an event of a payment (PostgreSQL migrates inside the test's transaction)
    shop = UserFactory()
    payment = PaymentFactory(client=shop)
    _migrate(BEFORE)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO payments_event (public_id, type, data, created_at, publish_attempts, payment_id)"
            " VALUES (%s, %s, %s, now(), 0, %s)",
            ["evt_old_1", "payment.initiated", json.dumps({"id": payment.public_id}), payment.pk],
        )

    # when the migration runs (and the later ones)
    _migrate(AFTER)
    _migrate(LATEST)

    # then the event is the same row, owned by the payment's client, about the payment
    event = Event.objects.get(public_id="evt_old_1")
    assert (event.client_id, event.subject_type, event.subject_id, event.type, event.data) == (
        shop.pk,
        "payment",
        payment.public_id,
        "payment.initiated",
        {"id": payment.public_id},
    )
    columns = [
        column.name for column in connection.introspection.get_table_description(connection.cursor(), "payments_event")
    ]
    assert "payment_id" not in columns


def test_events_written_before_issue_20_lose_their_secrets_and_personal_data_and_get_schema_version_1():
    # given events as the renderers before issue #20 wrote them
    payment = PaymentFactory()
    _migrate(AFTER)
    leaked = {
        "id": payment.public_id,
        "object": "payment",
        "client_secret": "pi_1_secret_abc",
        "customer_email": "ada@example.com",
        "metadata": {"order": "42"},
    }
    invoice = {"id": "in_1", "object": "invoice", "hosted_invoice_url": "https://invoice.example/i/1", "lines": []}
    with connection.cursor() as cursor:
        for public_id, data in (("evt_leak_1", leaked), ("evt_leak_2", invoice), ("evt_list", [1, "two"])):
            cursor.execute(
                "INSERT INTO payments_event (public_id, type, data, created_at, publish_attempts, client_id,"
                " subject_type, subject_id) VALUES (%s, 'payment.captured', %s, now(), 0, %s, 'payment', %s)",
                [public_id, json.dumps(data), payment.client_id, payment.public_id],
            )
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the test's own transaction: no FK check left pending

    # when the migration runs
    _migrate(LATEST)

    # then the keys are gone, the rest is as it was, and every event is of schema version 1
    events = {event.public_id: event for event in Event.objects.all()}
    assert events["evt_leak_1"].data == {"id": payment.public_id, "object": "payment", "metadata": {"order": "42"}}
    assert events["evt_leak_2"].data == {"id": "in_1", "object": "invoice", "lines": []}
    assert events["evt_list"].data == [1, "two"]
    assert {event.schema_version for event in events.values()} == {1}
