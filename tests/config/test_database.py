"""PostgreSQL connections: server-side binding, so psycopg prepares the statements a connection repeats."""

import psycopg
import pytest
from django.db import connection

from payments.models import Payment
from tests.payments.factories import PaymentFactory

pytestmark = pytest.mark.django_db


def test_statements_are_bound_server_side():
    assert connection.settings_dict["OPTIONS"]["server_side_binding"] is True
    with connection.cursor() as cursor:
        assert isinstance(cursor.cursor, psycopg.Cursor)
        assert not isinstance(cursor.cursor, psycopg.ClientCursor)  # which quotes the values into the SQL


def test_a_statement_run_again_and_again_is_prepared_once_on_the_connection():
    payment = PaymentFactory()
    for _ in range(8):
        assert Payment.objects.filter(pk=payment.pk).values_list("public_id", flat=True).get() == payment.public_id

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s", ['%"public_id"%'])
        prepared = [row[0] for row in cursor.fetchall()]
    assert any('FROM "payments_payment"' in sql for sql in prepared)
