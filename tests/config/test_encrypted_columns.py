"""Personal data at rest (issue #20): what PostgreSQL holds is ciphertext, the ORM reads it back, exact search
still finds it through the blind indexes, and rows written in clear before encryption are sealed on their next save
or by the data migrations."""

import json
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.test import Client

from config.encryption import email_index, ip_index, is_encrypted
from customers.models import Customer
from disputes.models import Dispute
from gateways.simulator import SimulatorGateway
from payments.models import DeadLetter, IdempotencyKey, Payment
from tests.accounts.factories import StaffUserFactory
from tests.customers.conftest import put_customer
from tests.webhooks import payloads
from tests.webhooks.conftest import deliver, payment_in, webhook_secret  # noqa: F401 - signed deliveries
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db

EMAIL, NAME, IP = "ada.lovelace@example.com", "Ada Lovelace", "203.0.113.9"


@pytest.fixture(autouse=True)
def _simulator_gateway(settings):
    settings.PAYMENTS_GATEWAY = "simulator"


def _raw(sql: str, params: list[Any]) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    assert row is not None
    return row


def _sealed(stored: Any, *clear: str) -> bool:
    """A stored value is ciphertext and none of the clear texts shows in it (in any case)."""
    return is_encrypted(stored) and not any(text.lower() in stored.lower() for text in clear)


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(StaffUserFactory(username="encryption-staff", is_superuser=True))
    return client


# --- customers --------------------------------------------------------------------------------------------
def test_a_customer_put_through_the_api_is_stored_encrypted_and_reads_back(storefront):
    # when a storefront puts a customer with an e-mail and a name
    response = put_customer(storefront, "cus_enc", email=EMAIL, name=NAME)

    # then the API answers with them, the table holds neither, and the ORM reads both back
    assert response.status_code in (200, 201), response.json()
    assert (response.json()["email"], response.json()["name"]) == (EMAIL, NAME)
    email, name, index = _raw(
        "SELECT email, name, email_index FROM customers_customer WHERE customer_id = %s", ["cus_enc"]
    )
    assert _sealed(email, EMAIL, "lovelace", "example.com")
    assert _sealed(name, NAME, "lovelace")
    assert index == email_index(EMAIL)
    assert len(index) == 64
    assert "lovelace" not in index
    customer = Customer.objects.get(customer_id="cus_enc")
    assert (customer.email, customer.name) == (EMAIL, NAME)


def test_changing_the_email_moves_its_index_and_the_old_one_finds_nothing(storefront):
    put_customer(storefront, "cus_move", email="first@example.com")

    response = put_customer(storefront, "cus_move", email="second@example.com")

    assert response.status_code == 200, response.json()
    customer = Customer.objects.get(customer_id="cus_move")
    assert customer.email_index == email_index("second@example.com")
    assert not Customer.objects.filter(email_index=email_index("first@example.com")).exists()
    assert _raw("SELECT email_index FROM customers_customer WHERE id = %s", [customer.pk]) == (
        email_index("second@example.com"),
    )


def test_admin_search_by_email_finds_exactly_the_right_customer(storefront, staff):
    # given two customers whose e-mails differ by one letter at the end
    put_customer(storefront, "cus_com", email="ada@example.com")
    put_customer(storefront, "cus_co", email="ada@example.co")
    com, co = (Customer.objects.get(customer_id=cid).public_id for cid in ("cus_com", "cus_co"))

    # when staff search for each (and for the first as typed in capitals)
    pages = {
        term: staff.get("/admin/customers/customer/", {"q": term}).content.decode()
        for term in ("ada@example.com", "ada@example.co", " ADA@Example.com ", "ada@example")
    }

    # then each search finds its customer only; a prefix finds nobody (exact search)
    assert com in pages["ada@example.com"]
    assert co not in pages["ada@example.com"]
    assert co in pages["ada@example.co"]
    assert com not in pages["ada@example.co"]
    assert com in pages[" ADA@Example.com "]
    assert co not in pages[" ADA@Example.com "]
    assert com not in pages["ada@example"]
    assert co not in pages["ada@example"]
    # and the list still shows the decrypted e-mail
    assert "ada@example.com" in pages["ada@example.com"]


def test_a_customer_written_in_clear_before_encryption_reads_and_is_encrypted_on_its_next_save(shop, staff):
    # given a row as the table held it before issue #20 (clear text, no index)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO customers_customer (public_id, client_id, customer_id, email, name, email_index, metadata,"
            " incarnation, detach_count, created_at, updated_at)"
            " VALUES ('cu_legacy', %s, 'cus_legacy', %s, %s, '', '{}', 0, 0, now(), now())",
            [shop.pk, EMAIL, NAME],
        )
    customer = Customer.objects.get(public_id="cu_legacy")
    assert (customer.email, customer.name) == (EMAIL, NAME)  # the clear value reads as it is

    # when it is saved
    customer.save()

    # then it is sealed, indexed, and found by e-mail
    email, name, index = _raw(
        "SELECT email, name, email_index FROM customers_customer WHERE public_id = 'cu_legacy'", []
    )
    assert _sealed(email, EMAIL)
    assert _sealed(name, NAME)
    assert index == email_index(EMAIL)
    assert "cu_legacy" in staff.get("/admin/customers/customer/", {"q": EMAIL}).content.decode()
    assert (Customer.objects.get(pk=customer.pk).email, Customer.objects.get(pk=customer.pk).name) == (EMAIL, NAME)


# --- payments ---------------------------------------------------------------------------------------------
def _create_payment(storefront, key: str, **body: Any):
    payload = {"amount": 2000, "currency": "usd", "customer_id": "cus_pay", **body}
    response = storefront.post("/api/v1/payments/", payload, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 201, response.json()
    return response


def test_a_payment_email_ip_and_stored_response_are_encrypted_and_read_back(storefront):
    # when a payment is created with the customer's e-mail and IP (an Idempotency-Key stores its response)
    response = _create_payment(
        storefront, "enc-pay-1", customer_email=EMAIL, customer_ip=IP, payment_method="pm_card_visa", confirm=True
    )
    shown = response.json()

    # then the payment's row holds neither, only their indexes
    email, ip, email_idx, ip_idx = _raw(
        "SELECT customer_email, customer_ip, customer_email_index, customer_ip_index FROM payments_payment"
        " WHERE public_id = %s",
        [shown["id"]],
    )
    assert _sealed(email, EMAIL, "lovelace")
    assert _sealed(ip, IP, "203.0.113")
    assert (email_idx, ip_idx) == (email_index(EMAIL), ip_index(IP))
    payment = Payment.objects.get(public_id=shown["id"])
    assert (payment.customer_email, payment.customer_ip) == (EMAIL, IP)
    # and the stored response (client_secret and e-mail) is ciphertext too, replayed in clear
    (body,) = _raw("SELECT response_body FROM payments_idempotencykey WHERE key = %s", ["enc-pay-1"])
    assert _sealed(body, EMAIL, shown["client_secret"], shown["id"])
    assert IdempotencyKey.objects.get(key="enc-pay-1").response_body["client_secret"] == shown["client_secret"]
    replay = _create_payment(
        storefront, "enc-pay-1", customer_email=EMAIL, customer_ip=IP, payment_method="pm_card_visa", confirm=True
    )
    assert replay.json() == shown


def test_a_payment_without_email_or_ip_stores_empty_values_and_no_index(storefront):
    shown = _create_payment(storefront, "enc-pay-2").json()

    assert _raw(
        "SELECT customer_email, customer_ip, customer_email_index, customer_ip_index FROM payments_payment"
        " WHERE public_id = %s",
        [shown["id"]],
    ) == ("", None, "", "")


def test_an_invalid_ip_is_still_refused_by_the_api(storefront):
    response = storefront.post(
        "/api/v1/payments/",
        {"amount": 2000, "currency": "usd", "customer_id": "cus_pay", "customer_ip": "not-an-ip"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="enc-bad-ip",
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "customer_ip"
    assert not Payment.objects.exists()


def test_admin_search_finds_payments_by_email_and_by_ip_through_their_indexes(storefront, staff):
    ours = _create_payment(storefront, "enc-s-1", customer_email="ada@example.com", customer_ip="2001:db8::1").json()
    other = _create_payment(storefront, "enc-s-2", customer_email="ada@example.co", customer_ip="203.0.113.10").json()

    by_email = staff.get("/admin/payments/payment/", {"q": "Ada@Example.com"}).content.decode()
    by_ip = staff.get("/admin/payments/payment/", {"q": "2001:0db8:0:0::1"}).content.decode()

    assert ours["id"] in by_email
    assert other["id"] not in by_email
    assert ours["id"] in by_ip
    assert other["id"] not in by_ip


def test_a_dead_letter_body_is_encrypted():
    letter = DeadLetter.objects.create(source="order.placed", body='{"email": "ada@example.com"}', error="bad")

    (body,) = _raw("SELECT body FROM payments_deadletter WHERE id = %s", [letter.pk])

    assert _sealed(body, "ada@example.com")
    assert DeadLetter.objects.get(pk=letter.pk).body == '{"email": "ada@example.com"}'


# --- webhooks and disputes ------------------------------------------------------------------------------------
def test_a_delivered_webhook_is_stored_encrypted_and_still_processed(payment_in, deliver):  # noqa: F811
    # given a payment awaiting capture, and Stripe's event of it carrying the customer's billing details
    payment = payment_in("requires_capture")
    intent = payloads.payment_intent(
        payment.gateway_reference, status="succeeded", amount_received=payment.amount, amount_capturable=0
    )
    intent["receipt_email"] = EMAIL
    intent["shipping"] = {"name": NAME, "address": {"line1": "12 St James's Square", "city": "London"}}
    event = payloads.event("payment_intent.succeeded", intent)

    # when it is delivered and processed
    deliver(event)

    # then the stored body is ciphertext, the worker read it (the payment moved), and the ORM gives it back
    body, status = _raw("SELECT body, status FROM webhooks_webhookevent WHERE stripe_id = %s", [event["id"]])
    assert _sealed(body, EMAIL, NAME, "St James", payment.gateway_reference)
    assert status == "processed"
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert json.loads(WebhookEvent.objects.get(stripe_id=event["id"]).body) == event


def test_a_disputes_evidence_is_stored_encrypted(storefront, deliver, finance):  # noqa: F811
    body = {"amount": 2000, "currency": "usd", "customer_id": "cus_ev", "payment_method": "pm_card_createDispute"}
    created = storefront.post(
        "/api/v1/payments/", {**body, "confirm": True}, format="json", HTTP_IDEMPOTENCY_KEY="ev-1"
    )
    assert created.status_code == 201, created.json()
    for event in SimulatorGateway.pending_dispute_events():
        deliver(event)
    dispute = Dispute.objects.get(payment__public_id=created.json()["id"])
    evidence = {"customer_name": NAME, "customer_email_address": EMAIL, "billing_address": "12 St James's Square"}

    response = finance.post(f"/api/v1/disputes/{dispute.public_id}/evidence/", {"evidence": evidence}, format="json")

    assert response.status_code == 200, response.json()
    (stored,) = _raw("SELECT evidence FROM disputes_dispute WHERE id = %s", [dispute.pk])
    assert _sealed(stored, NAME, EMAIL, "St James")
    assert Dispute.objects.get(pk=dispute.pk).evidence == evidence
    assert response.json()["evidence"] == evidence


# --- the data migrations ------------------------------------------------------------------------------------
BEFORE = [
    ("customers", "0003_token_reference_index"),
    ("payments", "0011_payment_dispute_amounts"),
    ("webhooks", "0001_initial"),
    ("disputes", "0002_staff_permissions"),
]


def _migrate(targets: list[tuple[str, str]]) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending trigger events before an ALTER TABLE
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def _leaves() -> list[tuple[str, str]]:
    return MigrationLoader(connection).graph.leaf_nodes()


def test_rows_stored_in_clear_are_encrypted_by_the_migrations_and_decrypted_by_their_reverse(shop):
    # given the tables as they were before issue #20, with rows in clear
    payment_row = _legacy_rows(shop)

    # when the migrations run
    _migrate(_leaves())

    # then every row is sealed and indexed, and reads back through the ORM
    email, name, index = _raw("SELECT email, name, email_index FROM customers_customer WHERE public_id = 'cu_m'", [])
    assert _sealed(email, EMAIL)
    assert _sealed(name, NAME)
    assert index == email_index(EMAIL)
    customer = Customer.objects.get(public_id="cu_m")
    assert (customer.email, customer.name) == (EMAIL, NAME)
    email, ip, email_idx, ip_idx = _raw(
        "SELECT customer_email, customer_ip, customer_email_index, customer_ip_index FROM payments_payment"
        " WHERE id = %s",
        [payment_row],
    )
    assert _sealed(email, EMAIL)
    assert _sealed(ip, IP)
    assert (email_idx, ip_idx) == (email_index(EMAIL), ip_index(IP))
    payment = Payment.objects.get(pk=payment_row)
    assert (payment.customer_email, payment.customer_ip) == (EMAIL, IP)  # the IP without inet's "/32"
    (body,) = _raw("SELECT response_body FROM payments_idempotencykey WHERE key = 'k-m'", [])
    assert _sealed(body, EMAIL)
    assert IdempotencyKey.objects.get(key="k-m").response_body == {"email": EMAIL}
    (body,) = _raw("SELECT body FROM webhooks_webhookevent WHERE stripe_id = 'evt_m'", [])
    assert _sealed(body, EMAIL)
    (body,) = _raw("SELECT body FROM payments_deadletter WHERE source = 'm'", [])
    assert _sealed(body, EMAIL)

    # and the reverse writes the clear values back into the old column types
    _migrate(BEFORE)
    assert _raw("SELECT email, name FROM customers_customer WHERE public_id = 'cu_m'", []) == (EMAIL, NAME)
    assert _raw("SELECT customer_email, host(customer_ip) FROM payments_payment WHERE id = %s", [payment_row]) == (
        EMAIL,
        IP,
    )
    (body,) = _raw("SELECT response_body FROM payments_idempotencykey WHERE key = 'k-m'", [])
    assert json.loads(body) == {"email": EMAIL}  # jsonb again
    assert _raw("SELECT body FROM webhooks_webhookevent WHERE stripe_id = 'evt_m'", []) == (json.dumps({"e": EMAIL}),)
    _migrate(_leaves())


def _legacy_rows(shop) -> int:
    _migrate(BEFORE)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO customers_customer (public_id, client_id, customer_id, email, name, metadata, incarnation,"
            " detach_count, created_at, updated_at) VALUES ('cu_m', %s, 'cus_m', %s, %s, '{}', 0, 0, now(), now())",
            [shop.pk, EMAIL, NAME],
        )
        cursor.execute(
            "INSERT INTO payments_payment (public_id, client_id, idempotency_key, amount, currency, status,"
            " capture_method, amount_capturable, amount_received, amount_refunded, customer_id, order_id,"
            " description, metadata, payment_method, gateway_payment_method, gateway_customer, off_session, invoice,"
            " setup_future_usage, gateway, client_secret, failure_code, failure_message, customer_email,"
            " customer_ip, pending_operation, cancellation_reason, needs_attention, last_error, dispute_reason,"
            " dispute_reference, amount_disputed, amount_dispute_held, risk_level, review_state, review_reasons,"
            " created_at, updated_at) VALUES ('pay_m', %s, '', 2000, 'usd', 'requires_payment_method', 'automatic',"
            " 0, 0, 0, 'cus_m', '', '', '{}', '', '', '', false, '', '', 'simulator', '', '', '', %s, %s, '', '',"
            " false, '', '', '', 0, 0, '', '', '[]', now(), now()) RETURNING id",
            [shop.pk, EMAIL, IP],
        )
        (payment_row,) = cursor.fetchone()
        cursor.execute(
            "INSERT INTO payments_idempotencykey (client_id, key, fingerprint, lock_token, response_status,"
            " response_body, created_at) VALUES (%s, 'k-m', 'f', '', 201, %s, now())",
            [shop.pk, json.dumps({"email": EMAIL})],
        )
        cursor.execute(
            "INSERT INTO payments_deadletter (source, body, headers, error, created_at)"
            " VALUES ('m', %s, '{}', 'bad', now())",
            [json.dumps({"e": EMAIL})],
        )
        cursor.execute(
            "INSERT INTO webhooks_webhookevent (stripe_id, type, api_version, livemode, body, received_at,"
            " received_via, status, ignored_reason, attempts, last_error) VALUES ('evt_m', 'x', '', false, %s,"
            " now(), 'webhook', 'received', '', 0, '')",
            [json.dumps({"e": EMAIL})],
        )
    return payment_row
