"""`manage.py rotate_encryption_key` on PostgreSQL: every encrypted column moves to the newest key, online."""

import io
import queue
import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections

from config.encryption import Keyring, key_id, keyring, new_key, parse_key
from config.management.commands import rotate_encryption_key
from customers.models import Customer
from payments.models import IdempotencyKey
from tests.customers.conftest import put_customer
from tests.payments.factories import IdempotencyKeyFactory
from tests.webhooks.factories import WebhookEventFactory
from webhooks.models import WebhookEvent

OLD, NEW = new_key(), new_key()
OLD_ID, NEW_ID = key_id(parse_key(OLD)), key_id(parse_key(NEW))


@pytest.fixture(autouse=True)
def _old_key(settings):
    settings.ENCRYPTION_KEYS = [OLD]
    settings.PAYMENTS_GATEWAY = "simulator"


def _raw(model, column: str) -> dict[int, str | None]:
    """The stored values of a column, straight from PostgreSQL (nothing decrypted)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, {column} FROM {model._meta.db_table} ORDER BY id")  # noqa: S608 - our names
        return dict(cursor.fetchall())


def _rotate(*args: str) -> str:
    out = io.StringIO()
    call_command("rotate_encryption_key", "--quiet", *args, stdout=out)
    return out.getvalue()


def _line(output: str, label: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(f"{label}:"))


def _seed(storefront, shop) -> None:
    assert put_customer(storefront, "cus_api", email="ada@example.com", name="Ada Lovelace").status_code == 201
    for n in range(5):
        Customer.objects.create(client=shop, customer_id=f"cus_{n}", email=f"buyer{n}@example.com", name=f"Buyer {n}")
    Customer.objects.create(client=shop, customer_id="cus_blank", email="", name="")
    for n in range(3):
        WebhookEventFactory(stripe_id=f"evt_rot_{n}")


def _plaintexts() -> tuple[list, list]:
    customers = list(Customer.objects.order_by("id").values_list("id", "email", "name"))
    events = list(WebhookEvent.objects.order_by("id").values_list("id", "body"))
    return customers, events


@pytest.mark.django_db
def test_rotation_moves_every_value_to_the_new_key_and_the_old_key_can_then_go(settings, storefront, shop):
    # given rows sealed under OLD (through the API and the models)
    _seed(storefront, shop)
    before = _plaintexts()
    assert all(value.startswith(f"enc1:{OLD_ID}:") for value in _raw(Customer, "email").values() if value)
    settings.ENCRYPTION_KEYS = [NEW, OLD]

    # when
    output = _rotate("--batch-size", "2")

    # then every non-empty value is under NEW and opens, with NEW alone, to the same plaintext
    only_new = Keyring((parse_key(NEW),))
    customers, events = before
    for model, column, context, plaintexts in (
        (Customer, "email", "customers.customer.email", {pk: email for pk, email, _name in customers}),
        (Customer, "name", "customers.customer.name", {pk: name for pk, _email, name in customers}),
        (WebhookEvent, "body", "webhooks.webhookevent.body", dict(events)),
    ):
        stored = _raw(model, column)
        assert all(value.startswith(f"enc1:{NEW_ID}:") for value in stored.values() if value), column
        opened = {pk: only_new.decrypt(value, context=context) if value else value for pk, value in stored.items()}
        assert opened == plaintexts, column
    blank = Customer.objects.get(customer_id="cus_blank")
    assert (_raw(Customer, "email")[blank.pk], _raw(Customer, "name")[blank.pk]) == ("", "")
    assert _line(output, "customers.customer.email").startswith(
        "customers.customer.email: 6 re-encrypted, 0 skipped (changed meanwhile), 0 unreadable, 0 left,"
    )
    assert _line(output, "webhooks.webhookevent.body").startswith("webhooks.webhookevent.body: 3 re-encrypted,")
    assert f"under key {NEW_ID}" in output.splitlines()[-1]
    # and with OLD removed everything still reads, through the ORM and the API
    settings.ENCRYPTION_KEYS = [NEW]
    assert _plaintexts() == before
    body = storefront.get("/api/v1/customers/cus_api/").json()
    assert (body["email"], body["name"]) == ("ada@example.com", "Ada Lovelace")


@pytest.mark.django_db
def test_a_second_run_changes_nothing(settings, storefront, shop):
    _seed(storefront, shop)
    settings.ENCRYPTION_KEYS = [NEW, OLD]
    _rotate()
    after_first = (_raw(Customer, "email"), _raw(Customer, "name"), _raw(WebhookEvent, "body"))

    output = _rotate()

    assert (_raw(Customer, "email"), _raw(Customer, "name"), _raw(WebhookEvent, "body")) == after_first
    assert _line(output, "customers.customer.name").startswith("customers.customer.name: 0 re-encrypted, 0 skipped")
    assert "0 values in" in output.splitlines()[-1]


@pytest.mark.django_db
def test_legacy_plaintext_rows_are_encrypted_and_json_text_is_kept_as_it_was(settings, shop):
    customer = Customer.objects.create(client=shop, customer_id="cus_legacy", email="old@example.com", name="x")
    idempotency = IdempotencyKeyFactory(response_body={"id": "pay_1"})
    legacy_json = '{"id": "pay_1",  "amount": 2000}'  # spacing json.dumps would not write
    with connection.cursor() as cursor:
        cursor.execute("UPDATE customers_customer SET name = %s WHERE id = %s", ["Plain Name", customer.pk])
        cursor.execute(
            f"UPDATE {IdempotencyKey._meta.db_table} SET response_body = %s WHERE id = %s",  # noqa: S608
            [legacy_json, idempotency.pk],
        )
    settings.ENCRYPTION_KEYS = [NEW, OLD]

    _rotate()

    name, body = _raw(Customer, "name")[customer.pk], _raw(IdempotencyKey, "response_body")[idempotency.pk]
    assert name.startswith(f"enc1:{NEW_ID}:")
    assert body.startswith(f"enc1:{NEW_ID}:")
    settings.ENCRYPTION_KEYS = [NEW]
    assert keyring().decrypt(name, context="customers.customer.name") == "Plain Name"
    assert keyring().decrypt(body, context="payments.idempotencykey.response_body") == legacy_json
    assert IdempotencyKey.objects.get(pk=idempotency.pk).response_body == {"id": "pay_1", "amount": 2000}
    assert Customer.objects.get(pk=customer.pk).name == "Plain Name"


@pytest.mark.django_db
def test_check_exits_1_while_a_value_is_under_an_older_key_and_0_after(settings, storefront, shop):
    _seed(storefront, shop)
    settings.ENCRYPTION_KEYS = [NEW, OLD]

    with pytest.raises(CommandError) as behind:
        _rotate("--check")

    assert behind.value.returncode == 1
    assert "not under the newest key" in str(behind.value)
    _rotate()
    assert f"is under key {NEW_ID}" in _rotate("--check")


@pytest.mark.django_db
def test_dry_run_counts_and_changes_nothing(settings, storefront, shop):
    _seed(storefront, shop)
    settings.ENCRYPTION_KEYS = [NEW, OLD]
    stored = (_raw(Customer, "email"), _raw(Customer, "name"), _raw(WebhookEvent, "body"))

    output = _rotate("--dry-run")

    assert (_raw(Customer, "email"), _raw(Customer, "name"), _raw(WebhookEvent, "body")) == stored
    assert _line(output, "customers.customer.email").startswith("customers.customer.email: 6 to re-encrypt,")
    assert "nothing changed" in output.splitlines()[-1]
    with pytest.raises(CommandError):
        _rotate("--check")


@pytest.mark.django_db
def test_from_pk_starts_there(settings, shop):
    first, second = (
        Customer.objects.create(client=shop, customer_id=f"cus_{n}", email=f"b{n}@example.com") for n in range(2)
    )
    settings.ENCRYPTION_KEYS = [NEW, OLD]

    _rotate("--from-pk", str(second.pk))

    stored = _raw(Customer, "email")
    assert stored[first.pk].startswith(f"enc1:{OLD_ID}:")
    assert stored[second.pk].startswith(f"enc1:{NEW_ID}:")


@pytest.mark.django_db
def test_a_value_no_listed_key_opens_fails_the_run_and_names_its_row(settings, shop):
    lost = Customer.objects.create(client=shop, customer_id="cus_lost", email="lost@example.com")
    settings.ENCRYPTION_KEYS = [NEW]  # OLD removed before rotating
    kept = Customer.objects.create(client=shop, customer_id="cus_kept", email="kept@example.com")

    with pytest.raises(CommandError) as failed:
        _rotate()

    assert failed.value.returncode == 1
    assert f"customers.customer.email pk {lost.pk}" in str(failed.value)
    assert _raw(Customer, "email")[lost.pk].startswith(f"enc1:{OLD_ID}:")  # left as it was, not destroyed
    assert Customer.objects.get(pk=kept.pk).email == "kept@example.com"


@pytest.mark.django_db(transaction=True)
def test_a_live_writer_loses_nothing_and_every_row_ends_under_the_new_key(settings, shop, monkeypatch):
    # given customers under OLD, then NEW deployed in front of it (the app now seals with NEW)
    customers = [
        Customer.objects.create(client=shop, customer_id=f"cus_live_{n}", email=f"live{n}@example.com", name="v0")
        for n in range(60)
    ]
    pks = [customer.pk for customer in customers]
    settings.ENCRYPTION_KEYS = [NEW, OLD]
    last: dict[int, str] = {}
    aimed: queue.Queue = queue.Queue()  # a row the rotation just read, that the writer must change next
    written = threading.Event()
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    pk, done = aimed.get_nowait()
                except queue.Empty:
                    pk, done = pks[n % len(pks)], None
                customer = Customer.objects.get(pk=pk)
                customer.name = f"v{n}"
                customer.save(update_fields=["name", "updated_at"])
                last[pk] = customer.name
                written.set()
                if done:
                    done.set()
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test below
            errors.append(exc)
        finally:
            connections.close_all()

    real = rotate_encryption_key._compare_and_set
    raced: list[int] = []

    def racing(column, sealed):
        # between this batch's read and its UPDATE, the writer changes one of its rows (and keeps changing others)
        if column.label == "customers.customer.name":
            raced.append(sealed[len(sealed) // 2][0])
            done = threading.Event()
            aimed.put((sealed[len(sealed) // 2][0], done))
            assert done.wait(10), "the writer did not write"
        return real(column, sealed)

    monkeypatch.setattr(rotate_encryption_key, "_compare_and_set", racing)
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert written.wait(10)

        # when the rotation runs while the writer writes
        output = _rotate("--batch-size", "7")
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors
    assert not thread.is_alive()

    # then each row holds the writer's last value, and everything is under NEW
    settings.ENCRYPTION_KEYS = [NEW]
    names = dict(Customer.objects.filter(pk__in=pks).values_list("pk", "name"))
    assert names == {pk: last.get(pk, "v0") for pk in pks}
    assert dict(Customer.objects.filter(pk__in=pks).values_list("pk", "email")) == {
        customer.pk: customer.email for customer in customers
    }
    for column in ("email", "name"):
        assert all(value.startswith(f"enc1:{NEW_ID}:") for value in _raw(Customer, column).values()), column
    line = _line(output, "customers.customer.name")
    assert "0 unreadable, 0 left" in line
    skipped = int(line.split(", ")[1].split()[0])
    assert raced
    assert skipped >= len(raced)  # each batch met a row the writer had just changed: the writer's value stood
