"""`config.rows.insert`: the row `save()` writes, without compiling the INSERT each time;
`save()` where it could differ."""

import pytest
from django.db import connection, transaction
from django.db.models.signals import post_save, pre_save
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config import rows
from config.rows import insert, lock_row, update_row
from events.models import Event
from payments.models import DeadLetter, Payment, PaymentStatusChange
from payments.states import PaymentStatus
from tests.accounts.factories import UserFactory
from tests.payments.factories import PaymentFactory

pytestmark = pytest.mark.django_db


def _columns(model, pk) -> dict:
    fields = list(model._meta.local_concrete_fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(connection.ops.quote_name(f.column) for f in fields)} "  # noqa: S608
            f"FROM {connection.ops.quote_name(model._meta.db_table)} WHERE {model._meta.pk.column} = %s",
            [pk],
        )
        return dict(zip([f.column for f in fields], cursor.fetchone(), strict=True))


def test_an_event_is_written_as_create_writes_it_with_its_database_defaults_and_sequence():
    client = UserFactory()
    data = {"amount": 2000, "nested": {"list": [1, "two"]}}

    made = Event.objects.create(
        type="payment.initiated", client=client, subject_type="payment", subject_id="pay_1", data=data
    )
    fast = insert(Event(type="payment.initiated", client=client, subject_type="payment", subject_id="pay_1", data=data))

    assert fast.sequence == made.sequence + 1
    assert fast._state.adding is False
    ours, theirs = _columns(Event, fast.sequence), _columns(Event, made.sequence)
    assert ours["transaction_id"] == theirs["transaction_id"]  # pg_current_xact_id(): the same test transaction
    assert ours["transaction_id"] is not None
    assert ours["created_at"] >= theirs["created_at"]
    differs = {"sequence", "public_id", "created_at"}
    assert {k: v for k, v in ours.items() if k not in differs} == {k: v for k, v in theirs.items() if k not in differs}
    assert Event.objects.get(sequence=fast.sequence).data == data


def test_an_encrypted_column_is_sealed_as_save_seals_it():
    row = insert(DeadLetter(source="order.placed", body="customer ann@example.com", headers={"h": "1"}, error="bad"))

    stored = _columns(DeadLetter, row.pk)
    assert "ann@example.com" not in str(stored["body"])
    assert DeadLetter.objects.get(pk=row.pk).body == "customer ann@example.com"


def test_pre_and_post_save_receivers_run_as_they_do_for_save():
    payment = PaymentFactory()
    seen = []

    def before(sender, instance, **kwargs):
        seen.append(("pre", instance.pk, kwargs["raw"]))
        instance.reason = "set by a pre_save receiver"

    def after(sender, instance, created, **kwargs):
        seen.append(("post", instance.pk is not None, created))

    pre_save.connect(before, sender=PaymentStatusChange)
    post_save.connect(after, sender=PaymentStatusChange)
    try:
        row = insert(PaymentStatusChange(payment=payment, from_status="", to_status="succeeded", source="api"))
    finally:
        pre_save.disconnect(before, sender=PaymentStatusChange)
        post_save.disconnect(after, sender=PaymentStatusChange)

    assert seen == [("pre", None, False), ("post", True, True)]
    assert PaymentStatusChange.objects.get(pk=row.pk).reason == "set by a pre_save receiver"
    assert PaymentStatusChange.objects.get(pk=row.pk).to_status == "succeeded"


def test_a_database_default_the_object_sets_is_kept():
    client = UserFactory()

    row = insert(
        Event(type="t.t", client=client, subject_type="payment", subject_id="pay_2", data={}, transaction_id=7)
    )

    assert _columns(Event, row.sequence)["transaction_id"] == 7


def test_update_row_sets_the_fields_where_the_row_still_matches_and_counts_it():
    payment = PaymentFactory(requires_confirmation=True)
    before = payment.updated_at
    payment.status, payment.failure_code = "failed", "card_declined"

    assert update_row(payment, ["status", "failure_code", "updated_at"], where={"id": payment.pk, "status": "x"}) == 0
    assert Payment.objects.get(pk=payment.pk).status == "requires_confirmation"
    matched = update_row(
        payment, ["status", "failure_code", "updated_at"], where={"id": payment.pk, "status": "requires_confirmation"}
    )

    assert matched == 1
    stored = Payment.objects.get(pk=payment.pk)
    assert (stored.status, stored.failure_code) == ("failed", "card_declined")
    assert stored.updated_at > before  # auto_now, as save(update_fields=…) sets it


def test_a_compare_and_set_update_finds_its_row_by_the_primary_key_in_the_generic_plan():
    """A prepared statement runs its generic plan after five executions; on a table without statistics (a new
    database) the checks written with '=' let PostgreSQL pick the index on status, reading every payment of
    that status for each UPDATE (342 buffers a call in the benchmark). The primary key must pick the row."""
    PaymentFactory.create_batch(30, requires_confirmation=True)
    payment = PaymentFactory(requires_confirmation=True)
    where = {"id": payment.pk, "updated_at": payment.updated_at, "status": payment.status, "pending_operation": ""}
    plan = rows._update_plan(Payment, ("description", "updated_at"), tuple(where), "default")
    numbered = plan.sql
    for n in range(1, numbered.count("%s") + 1):
        numbered = numbered.replace("%s", f"${n}", 1)
    payment.description = "checked"
    values = [f.get_db_prep_save(f.pre_save(payment, False), connection) for f in plan.fields]
    values += [f.get_db_prep_value(where[f.name], connection) for f in plan.where]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        # Which index: on a table this small, once an earlier test's ANALYZE gave it statistics, a scan of its
        # one page is cheapest of all, and would say nothing of the indexes (it failed in some test orders).
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"PREPARE cas AS {numbered}")
        arguments = connection.ops.compose_sql(", ".join(["%s"] * len(values)), values)
        cursor.execute(f"EXPLAIN EXECUTE cas({arguments})")
        explained = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute(f"EXECUTE cas({arguments})")
        matched = cursor.rowcount
        cursor.execute("DEALLOCATE cas")

    assert "payments_payment_pkey" in explained, explained
    assert matched == 1
    assert Payment.objects.get(pk=payment.pk).description == "checked"


def test_update_row_refuses_a_none_it_could_never_match():
    payment = PaymentFactory()

    with pytest.raises(ValueError, match="None"):
        update_row(payment, ["status"], where={"id": payment.pk, "gateway_reference": None})


def test_lock_row_reads_the_row_as_select_for_update_get_does_and_locks_it():
    payment = PaymentFactory(
        customer_email="ann@example.com", customer_ip="203.0.113.7", metadata={"order": "A-1"}, amount=1234
    )
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        ours = lock_row(Payment, payment.pk)
        theirs = Payment.objects.select_for_update(of=("self",)).get(pk=payment.pk)

    ours_sql, theirs_sql = (query["sql"] for query in queries.captured_queries)
    assert ours_sql == theirs_sql.replace(" LIMIT 21", "")  # the ORM's SQL (get() adds its limit), FOR UPDATE
    assert 'FOR UPDATE OF "payments_payment"' in ours_sql
    fields = [f.attname for f in Payment._meta.concrete_fields]
    assert {name: getattr(ours, name) for name in fields} == {name: getattr(theirs, name) for name in fields}
    assert (ours.customer_email, ours.customer_ip, ours.metadata) == (
        "ann@example.com",
        "203.0.113.7",
        {"order": "A-1"},
    )
    assert ours._state.adding is False
    assert ours._state.db == "default"


def test_lock_row_says_when_the_row_is_missing():
    with transaction.atomic(), pytest.raises(Payment.DoesNotExist):
        lock_row(Payment, 10**12)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30),
    flag=st.booleans(),
    status=st.sampled_from(PaymentStatus),
    email=st.one_of(st.just(""), st.emails()),
)
def test_each_column_is_prepared_as_save_prepares_it(text, flag, status, email):
    payment = PaymentFactory.build(
        client=UserFactory.build(pk=5),
        description=text,
        order_id=text[:20],
        off_session=flag,
        needs_attention=not flag,
        status=status,
        customer_email=email,
        failure_message=text,
    )
    plan = rows._insert_plan(Payment, "default")
    assert plan is not None
    assert str in plan.as_is
    assert bool in plan.as_is

    ours = rows._insert_values(payment, plan, connection)

    # the columns written as they are (the others take the fields' own path, as before)
    for field, kind, value in zip(plan.fields, plan.as_is, ours, strict=True):
        if kind is None:
            continue
        assert value == field.get_db_prep_save(field.pre_save(payment, True), connection=connection), field.name


def test_encrypted_and_integer_columns_go_through_their_fields():
    plan = rows._insert_plan(Payment, "default")
    assert plan is not None
    kinds = {field.name: kind for field, kind in zip(plan.fields, plan.as_is, strict=True)}

    assert kinds["customer_email"] is None  # an encrypted TextField seals its value
    assert kinds["amount"] is None  # PostgreSQL's backend adapts integers
    assert kinds["currency"] is str


def test_lock_row_where_reads_and_locks_the_row_its_columns_name_as_the_orm_does():
    payment = PaymentFactory(customer_email="ann@example.com", metadata={"order": "A-1"})
    where = {"public_id": payment.public_id, "client": payment.client_id}
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        ours = rows.lock_row_where(Payment, where)
        theirs = Payment.objects.select_for_update(of=("self",)).get(public_id=payment.public_id, client=payment.client)

    ours_sql, theirs_sql = (query["sql"] for query in queries.captured_queries)
    assert ours_sql == theirs_sql.replace(" LIMIT 21", "")
    assert "FOR UPDATE" in ours_sql
    assert {f.attname: getattr(ours, f.attname) for f in Payment._meta.concrete_fields} == {
        f.attname: getattr(theirs, f.attname) for f in Payment._meta.concrete_fields
    }
    assert ours.customer_email == "ann@example.com"  # decrypted, as the ORM reads it


@pytest.mark.django_db(transaction=True)
def test_lock_row_where_finds_nothing_for_another_client_and_refuses_outside_a_transaction():
    payment = PaymentFactory()
    other = PaymentFactory()

    with transaction.atomic(), pytest.raises(Payment.DoesNotExist):
        rows.lock_row_where(Payment, {"public_id": payment.public_id, "client": other.client_id})
    with pytest.raises(TransactionManagementError):
        rows.lock_row_where(Payment, {"public_id": payment.public_id})  # its lock would be gone at once


def test_lock_row_where_refuses_a_column_it_cannot_stand_in_for():
    payment = PaymentFactory()

    with transaction.atomic(), pytest.raises(ValueError, match="text and integer"):
        rows.lock_row_where(Payment, {"created_at": payment.created_at})
