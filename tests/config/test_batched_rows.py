"""`config.rows.batched`: deferred INSERTs go to the database together, in order with everything else."""

import pytest
from django.db import connection, transaction
from django.db.models.signals import post_save
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.rows import batched, insert, insert_row, update_row
from events.models import Event
from payments.models import IdempotencyKey, Payment, PaymentStatusChange
from tests.accounts.factories import UserFactory
from tests.payments.factories import PaymentFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _event(client, subject: str) -> Event:
    return Event(type="payment.initiated", client=client, subject_type="payment", subject_id=subject, data={"n": 1})


def _statements(captured) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if q["sql"] not in {"BEGIN", "COMMIT"}]


def test_deferred_rows_are_one_statement_and_each_gets_its_key_and_database_defaults(on_postgres):
    client = UserFactory()
    payment = PaymentFactory(client=client)
    with CaptureQueriesContext(connection) as captured, transaction.atomic(), batched():
        first = insert(_event(client, "pay_a"), deferred=True)
        change = insert(PaymentStatusChange(payment=payment, from_status="", to_status="succeeded"), deferred=True)
        second = insert(_event(client, "pay_b"), deferred=True)
        assert first.pk is None  # still waiting for the batch

    statements = _statements(captured)
    assert len(statements) == (1 if on_postgres else 3)
    if on_postgres:
        assert statements[0].startswith("WITH r0 AS (INSERT INTO")
    assert second.sequence == first.sequence + 1
    assert Event.objects.get(pk=first.pk).subject_id == "pay_a"
    assert Event.objects.get(pk=second.pk).subject_id == "pay_b"
    assert PaymentStatusChange.objects.get(pk=change.pk).payment_id == payment.pk
    if on_postgres:  # a database default (the writing transaction's id) read back into each object
        assert first.transaction_id == second.transaction_id is not None


def test_a_statement_made_meanwhile_sees_the_rows_deferred_before_it():
    client = UserFactory()
    with transaction.atomic(), batched():
        insert(_event(client, "pay_seen"), deferred=True)
        assert Event.objects.filter(subject_id="pay_seen").count() == 1  # flushed first, then counted
        insert(_event(client, "pay_seen"), deferred=True)
    assert Event.objects.filter(subject_id="pay_seen").count() == 2


def test_rows_deferred_in_a_savepoint_that_rolls_back_are_rolled_back_with_it():
    client = UserFactory()
    with transaction.atomic(), batched():
        insert(_event(client, "pay_kept"), deferred=True)
        try:
            with transaction.atomic():
                insert(_event(client, "pay_dropped"), deferred=True)
                raise RuntimeError("undo this savepoint")
        except RuntimeError:
            pass
    assert list(Event.objects.values_list("subject_id", flat=True)) == ["pay_kept"]


def test_rows_deferred_before_an_error_the_caller_catches_are_committed():
    client = UserFactory()
    with transaction.atomic():
        try:
            with batched():
                insert(_event(client, "pay_before_error"), deferred=True)
                raise ValueError("not a database error")
        except ValueError:
            pass
    assert Event.objects.filter(subject_id="pay_before_error").exists()


def test_rows_deferred_in_a_transaction_that_fails_are_not_written():
    client = UserFactory()

    def fail_after_a_deferred_row() -> None:
        with transaction.atomic(), batched():
            insert(_event(client, "pay_rolled_back"), deferred=True)
            raise ValueError("roll back")

    with pytest.raises(ValueError, match="roll back"):
        fail_after_a_deferred_row()
    assert not Event.objects.filter(subject_id="pay_rolled_back").exists()


def test_a_model_with_post_save_receivers_is_written_at_once():
    client = UserFactory()
    seen = []

    def receiver(sender, instance, created, **kwargs):
        seen.append(Event.objects.filter(pk=instance.pk).exists())

    post_save.connect(receiver, sender=Event)
    try:
        with transaction.atomic(), batched():
            event = insert(_event(client, "pay_received"), deferred=True)
            assert event.pk is not None
    finally:
        post_save.disconnect(receiver, sender=Event)
    assert seen == [True]  # the receiver found the row it was told about


def test_without_a_batch_a_deferred_row_is_written_at_once():
    client = UserFactory()
    with CaptureQueriesContext(connection) as captured:
        event = insert(_event(client, "pay_alone"), deferred=True)
    assert event.pk is not None
    assert len(_statements(captured)) == 1
    assert Event.objects.filter(pk=event.pk).exists()


def test_a_deferred_update_goes_with_the_batch_and_writes_its_row(on_postgres):
    client = UserFactory()
    payment = PaymentFactory(client=client, description="before")
    payment.description = "after"
    with CaptureQueriesContext(connection) as captured, transaction.atomic(), batched():
        insert(_event(client, "pay_u"), deferred=True)
        assert update_row(payment, ["description"], where={"id": payment.pk}, deferred=True) is None
        assert Payment.objects.filter(pk=payment.pk, description="after").count() == 1  # flushed first, then read

    statements = _statements(captured)
    assert len(statements) == (2 if on_postgres else 3)
    if on_postgres:
        assert statements[0].startswith("WITH r0 AS (INSERT INTO")
        assert "r1 AS (UPDATE" in statements[0]
    assert Event.objects.filter(subject_id="pay_u").count() == 1


def test_a_deferred_update_outside_a_batch_runs_at_once_and_counts_its_rows():
    payment = PaymentFactory(description="before")
    payment.description = "after"

    assert update_row(payment, ["description"], where={"id": payment.pk}, deferred=True) == 1
    assert Payment.objects.get(pk=payment.pk).description == "after"


def test_a_deferred_update_in_a_savepoint_that_rolls_back_is_rolled_back_with_it():
    payment = PaymentFactory(description="before")
    payment.description = "after"
    with transaction.atomic(), batched():
        try:
            with transaction.atomic():
                update_row(payment, ["description"], where={"id": payment.pk}, deferred=True)
                raise RuntimeError("the savepoint rolls back")
        except RuntimeError:
            pass

    assert Payment.objects.get(pk=payment.pk).description == "before"


def test_two_deferred_updates_of_one_row_both_take_effect_in_order(on_postgres):
    payment = PaymentFactory(description="before", metadata={})
    with CaptureQueriesContext(connection) as captured, transaction.atomic(), batched():
        payment.description = "first"
        update_row(payment, ["description"], where={"id": payment.pk}, deferred=True)
        payment.description, payment.metadata = "second", {"n": "2"}
        update_row(payment, ["description", "metadata"], where={"id": payment.pk}, deferred=True)

    # A WITH applies only one of two changes to one row: the second UPDATE of the table goes in a statement of its own.
    assert len(_statements(captured)) == 2
    assert Payment.objects.values_list("description", "metadata").get(pk=payment.pk) == ("second", {"n": "2"})


def test_deferred_updates_of_two_tables_share_the_batch(on_postgres):
    payment = PaymentFactory(description="before")
    event = insert(_event(payment.client, "pay_t"))
    with CaptureQueriesContext(connection) as captured, transaction.atomic(), batched():
        payment.description = "after"
        update_row(payment, ["description"], where={"id": payment.pk}, deferred=True)
        event.publish_attempts = 3
        update_row(event, ["publish_attempts"], where={"sequence": event.sequence}, deferred=True)

    assert len(_statements(captured)) == (1 if on_postgres else 2)
    assert Payment.objects.get(pk=payment.pk).description == "after"
    assert Event.objects.get(pk=event.pk).publish_attempts == 3


def test_a_row_whose_id_was_drawn_before_waits_in_the_batch_and_is_inserted_with_that_id(on_postgres):
    client = UserFactory()
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('payments_payment', 'id'))")
        (drawn,) = cursor.fetchone()
    payment = PaymentFactory.build(id=drawn, client=client, description="drawn")
    with CaptureQueriesContext(connection) as captured, transaction.atomic(), batched():
        insert_row(payment, deferred=True)
        change = insert(PaymentStatusChange(payment=payment, from_status="", to_status="pending"), deferred=True)
        assert _statements(captured) == []  # both wait
        assert Payment.objects.filter(pk=drawn).exists()  # a read writes the batch first

    assert len(_statements(captured)) == (2 if on_postgres else 3)  # the batch (one statement), the read
    assert Payment.objects.get(pk=drawn).description == "drawn"
    assert PaymentStatusChange.objects.get(pk=change.pk).payment_id == drawn


def test_an_update_of_a_row_the_batch_is_inserting_flushes_the_insert_first(on_postgres):
    """The members of a WITH share one snapshot: an UPDATE beside the INSERT of its row would match nothing."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('payments_payment', 'id'))")
        (drawn,) = cursor.fetchone()
    payment = PaymentFactory.build(id=drawn, client=UserFactory(), description="inserted")
    with CaptureQueriesContext(connection) as captured, transaction.atomic(), batched():
        insert_row(payment, deferred=True)
        payment.description = "then updated"
        update_row(payment, ["description"], where={"id": drawn}, deferred=True)

    assert len(_statements(captured)) == 2
    assert Payment.objects.get(pk=drawn).description == "then updated"


def test_a_locked_payments_save_that_breaks_a_constraint_fails_its_transaction_at_the_batch():
    """A locked payment's save waits for the batch: its error comes at the flush, and nothing of the block stays."""
    from django.db import IntegrityError

    from payments.locks import lock_payment
    from payments.saving import payment_update

    payment = PaymentFactory(status="succeeded", amount=1000, amount_received=1000, amount_refunded=0)

    def refund_too_much() -> None:
        with transaction.atomic(), batched():
            locked = lock_payment(payment.pk)
            payment_update(locked, amount_refunded=2000, description="never")  # more than was received
            insert(_event(payment.client, "pay_never"), deferred=True)

    with pytest.raises(IntegrityError):
        refund_too_much()

    assert Payment.objects.values_list("amount_refunded", "description").get(pk=payment.pk) == (0, payment.description)
    assert not Event.objects.filter(subject_id="pay_never").exists()


def test_a_batch_statement_with_many_parameters_is_converted_once_per_shape():
    """psycopg parses `%s` placeholders through a cache only up to 50 parameters by default; a batch has more."""
    from psycopg import _queries

    client = UserFactory()

    def batch(label: str) -> None:
        with transaction.atomic(), batched():
            for n in range(8):  # 8 events of 9 columns: 72 parameters
                insert(_event(client, f"pay_{label}_{n}"), deferred=True)

    batch("first")
    before = _queries._query2pg.cache_info()
    batch("second")
    after = _queries._query2pg.cache_info()

    assert after.hits > before.hits  # the second statement's conversion came from the cache
    assert after.misses == before.misses
    assert Event.objects.filter(subject_id__startswith="pay_second_").count() == 8


def _key(client, key: str, fingerprint: str) -> IdempotencyKey:
    now = timezone.now()
    return IdempotencyKey(client=client, key=key, fingerprint=fingerprint, lock_token="", created_at=now)


def test_a_deferred_insert_whose_key_is_taken_is_told_after_the_batch_and_the_others_are_written(on_postgres):
    client = UserFactory()
    IdempotencyKey.objects.create(client=client, key="taken", fingerprint="first", created_at=timezone.now())
    conflicts = []
    with CaptureQueriesContext(connection) as captured, transaction.atomic(), batched():
        before = insert(_event(client, "pay_before"), deferred=True)
        again = insert_row(_key(client, "taken", "second"), deferred=True, on_conflict=lambda: conflicts.append(1))
        fresh = insert_row(_key(client, "new", "mine"), deferred=True, on_conflict=lambda: conflicts.append(2))
        after = insert(_event(client, "pay_after"), deferred=True)
        assert conflicts == []  # nothing written yet

    assert conflicts == [1]  # the taken key only, once
    assert len(_statements(captured)) == (1 if on_postgres else 4)
    assert again.pk is None
    assert fresh.pk is not None
    assert Event.objects.filter(pk__in=[before.pk, after.pk]).count() == 2  # the members beside it were written
    assert IdempotencyKey.objects.get(client=client, key="taken").fingerprint == "first"  # left as it was
    assert IdempotencyKey.objects.get(pk=fresh.pk).fingerprint == "mine"


def test_a_conflict_callback_that_raises_ends_the_transaction_and_nothing_of_the_batch_stays():
    client = UserFactory()
    IdempotencyKey.objects.create(client=client, key="taken", fingerprint="first", created_at=timezone.now())

    def taken() -> None:
        raise LookupError("the key is taken")

    def write_both() -> None:
        with transaction.atomic(), batched():
            insert(_event(client, "pay_gone"), deferred=True)
            insert_row(_key(client, "taken", "second"), deferred=True, on_conflict=taken)

    with pytest.raises(LookupError, match="taken"):
        write_both()

    assert not Event.objects.filter(subject_id="pay_gone").exists()
    assert IdempotencyKey.objects.filter(client=client).count() == 1


def test_a_conflict_checked_insert_outside_a_batch_runs_at_once():
    client = UserFactory()
    conflicts = []
    first = insert_row(_key(client, "k", "one"), on_conflict=lambda: conflicts.append("first"))
    second = insert_row(_key(client, "k", "two"), on_conflict=lambda: conflicts.append("second"))

    assert first.pk is not None
    assert second.pk is None
    assert conflicts == ["second"]
    assert IdempotencyKey.objects.get(client=client, key="k").fingerprint == "one"


def test_a_checked_deferred_update_that_matches_no_row_is_told_after_the_batch(on_postgres):
    client = UserFactory()
    payment = PaymentFactory(client=client, description="as read")
    Payment.objects.filter(pk=payment.pk).update(description="changed meanwhile")
    misses = []
    payment.description = "ours"
    with CaptureQueriesContext(connection) as captured, transaction.atomic(), batched():
        update_row(
            payment,
            ["description"],
            where={"id": payment.pk, "description": "as read"},
            deferred=True,
            on_miss=lambda: misses.append("missed"),
        )
        beside = insert(_event(client, "pay_beside"), deferred=True)
        assert misses == []  # nothing run yet

    assert misses == ["missed"]
    assert len(_statements(captured)) == (1 if on_postgres else 2)
    assert Payment.objects.get(pk=payment.pk).description == "changed meanwhile"  # the check held
    assert Event.objects.filter(pk=beside.pk).exists()  # the caller chose to commit: the rest was written
    assert payment.pk is not None  # the object's own key untouched by the check


def test_a_checked_deferred_update_that_matches_writes_and_says_nothing():
    payment = PaymentFactory(description="as read")
    payment.description = "ours"
    with transaction.atomic(), batched():
        update_row(
            payment, ["description"], where={"id": payment.pk, "description": "as read"}, deferred=True, on_miss=_never
        )

    assert Payment.objects.get(pk=payment.pk).description == "ours"


def test_a_checked_update_outside_a_batch_runs_at_once():
    payment = PaymentFactory(description="as read")
    misses = []
    payment.description = "ours"
    where = {"id": payment.pk, "description": "as read"}
    assert update_row(payment, ["description"], where=where, on_miss=lambda: misses.append(1)) == 1
    assert update_row(payment, ["description"], where=where, on_miss=lambda: misses.append(2)) == 0
    assert misses == [2]


def _never() -> None:
    raise AssertionError("the UPDATE matched its row")
