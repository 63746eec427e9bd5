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

    # when the migration runs
    _migrate(AFTER)

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
