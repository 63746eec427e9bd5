"""order.placed messages: one payment per order, bad messages dead-lettered, the worker keeps consuming."""

import json
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.core.management import call_command
from kombu import Connection, Producer

from accounts.models import ApiRole, User
from config.security import contains_card_number
from payments import services
from payments.consumers import ROUTING_KEY, order_placed_queue, orders_exchange
from payments.errors import GatewayUnavailableError
from payments.models import DeadLetter, Payment
from payments.orders import MAX_ATTEMPTS, Outcome, order_placed_consume
from tests.accounts.factories import UserFactory
from tests.helpers import wait_for

CARD = "4242424242424242"


def order(**overrides):
    """An order.placed message of the `shop` client (tests/conftest.py)."""
    return {
        "client": "shop",
        "order_id": "ord_1001",
        "customer_id": "cus_7",
        "amount": 2500,
        "currency": "eur",
        "payment_method": "pm_card_visa",
        **overrides,
    }


def consume(message, *, headers=None, attempt=1):
    body = message if isinstance(message, str) else json.dumps(message)
    return order_placed_consume(body=body.encode(), headers=headers or {}, attempt=attempt)


# --- the consume function --------------------------------------------------------------------------
@pytest.mark.django_db
def test_an_order_becomes_one_confirmed_payment_of_its_client(shop, simulator):
    # given
    message = order(
        capture_method="manual",
        customer_email="ada@example.com",
        description="Order 1001",
        metadata={"cart": "c_9"},
    )

    # when
    result = consume(message)

    # then
    payment = Payment.objects.get()
    assert result.outcome == Outcome.PROCESSED
    assert result.payment == payment
    assert payment.client == shop
    assert payment.idempotency_key == "order:ord_1001"
    assert payment.order_id == "ord_1001"
    assert payment.customer_id == "cus_7"
    assert (payment.amount, payment.currency) == (2500, "eur")
    assert payment.capture_method == "manual"
    assert payment.payment_method == "pm_card_visa"
    assert payment.customer_email == "ada@example.com"
    assert payment.description == "Order 1001"
    assert payment.metadata == {"cart": "c_9"}
    assert payment.status == "requires_capture"
    assert payment.amount_capturable == 2500
    assert set(payment.status_changes.values_list("source", flat=True)) == {"worker"}
    assert simulator.performed_count("create_intent") == 1  # created and confirmed in one call
    assert simulator.call_count("confirm_intent") == 0
    assert DeadLetter.objects.count() == 0


@pytest.mark.django_db
def test_an_order_without_payment_method_is_created_and_not_confirmed(shop, simulator):
    message = order()
    del message["payment_method"]

    result = consume(message)

    assert result.outcome == Outcome.PROCESSED
    assert result.payment.status == "requires_payment_method"
    assert simulator.performed_count("create_intent") == 1
    assert simulator.call_count("confirm_intent") == 0


@pytest.mark.django_db
def test_the_same_message_twice_makes_one_payment_and_one_gateway_charge(shop, simulator):
    first = consume(order())

    second = consume(order())

    assert second.outcome == Outcome.PROCESSED
    assert second.payment == first.payment
    assert Payment.objects.count() == 1
    assert Payment.objects.get().status == "succeeded"
    assert simulator.performed_count("create_intent") == 1
    assert simulator.call_count("confirm_intent") == 0
    assert DeadLetter.objects.count() == 0


@pytest.mark.django_db
def test_a_declined_card_leaves_a_failed_payment_and_no_dead_letter(shop, simulator):
    result = consume(order(payment_method="pm_card_chargeDeclined"))

    assert result.outcome == Outcome.DECLINED
    assert result.payment.status == "failed"
    assert result.payment.failure_code == "card_declined"
    assert consume(order(payment_method="pm_card_chargeDeclined")).outcome == Outcome.PROCESSED
    assert simulator.call_count("create_intent") == 1  # the one create + confirm, declined
    assert DeadLetter.objects.count() == 0


_BAD = "The body must be a JSON object."
_CARD_REFUSED = "Card numbers must never be sent to this API; use a gateway payment method token."


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(
            "{not json",
            "body is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
            id="not-json",
        ),
        pytest.param(
            f"card {CARD}", "body is not JSON: Expecting value: line 1 column 1 (char 0)", id="not-json-with-card"
        ),
        pytest.param([order()], f"non_field_errors: {_BAD} (invalid)", id="not-an-object"),
        pytest.param(
            order(amount="2500"),
            "amount: must be an integer (a JSON number without a fraction). (invalid)",
            id="amount-string",
        ),
        pytest.param(
            order(amount=25.0),
            "amount: must be an integer (a JSON number without a fraction). (invalid)",
            id="amount-float",
        ),
        pytest.param(
            order(amount=0), "amount: amount must be a positive integer (parameter_invalid)", id="amount-zero"
        ),
        pytest.param(
            # A card number sent as a JSON number is card data too (checked before the amount's bounds).
            order(amount=int(CARD)),
            f"amount: {_CARD_REFUSED} (card_data_not_allowed)",
            id="card-as-amount",
        ),
        pytest.param(
            order(currency="xyz"), "currency: currency 'xyz' is not supported (currency_not_supported)", id="currency"
        ),
        pytest.param(order(order_id=None), "order_id: This field may not be null. (null)", id="order-id-null"),
        pytest.param(
            order(order_id="o" * 201),
            "order_id: Ensure this field has no more than 200 characters. (max_length)",
            id="order-id-too-long",
        ),
        pytest.param(
            {k: v for k, v in order().items() if k != "customer_id"},
            "customer_id: This field is required. (required)",
            id="no-customer",
        ),
        pytest.param(
            {k: v for k, v in order().items() if k != "client"},
            "client: This field is required. (required)",
            id="no-client",
        ),
        pytest.param(
            order(payment_method="card"),
            "payment_method: payment_method must be a gateway token such as pm_card_visa"
            " or a saved method (pmt_...) (parameter_invalid)",
            id="payment-method",
        ),
        pytest.param(order(confirm=True), "confirm: Unknown parameter: confirm (parameter_invalid)", id="confirm"),
        pytest.param(
            order(card={"number": CARD}), f"card[number]: {_CARD_REFUSED} (card_data_not_allowed)", id="card-object"
        ),
        pytest.param(
            order(metadata={"note": "4242 4242 4242 4242"}),
            f"metadata[note]: {_CARD_REFUSED} (card_data_not_allowed)",
            id="card-in-metadata",
        ),
        pytest.param(
            order(customer_id=CARD), f"customer_id: {_CARD_REFUSED} (card_data_not_allowed)", id="card-as-customer"
        ),
    ],
)
@pytest.mark.django_db
def test_a_malformed_message_is_dead_lettered_without_card_numbers_and_makes_no_payment(shop, simulator, body, error):
    result = consume(body, headers={"order_service_version": "3.1"})

    dead_letter = DeadLetter.objects.get()
    assert result.outcome == Outcome.DEAD_LETTERED
    assert result.dead_letter == dead_letter
    assert dead_letter.source == "order.placed"
    assert dead_letter.error == error
    assert dead_letter.headers == {"order_service_version": "3.1"}
    assert not contains_card_number(dead_letter.body)
    assert CARD not in dead_letter.body
    assert "4242 4242" not in dead_letter.body
    assert Payment.objects.count() == 0
    assert simulator.call_count("create_intent") == 0


@pytest.mark.django_db
def test_a_dead_letter_keeps_the_body_with_card_numbers_masked():
    consume(order(card={"number": CARD}, amount="x"))

    assert json.loads(DeadLetter.objects.get().body) == order(card={"number": "[CARD]"}, amount="x")


@pytest.mark.django_db
def test_card_numbers_in_headers_are_masked_in_the_dead_letter(shop):
    consume("nope", headers={"note": f"paid with {CARD}", "raw": int(CARD), "trace": ["t-1"]})

    assert DeadLetter.objects.get().headers == {"note": "paid with [CARD]", "raw": "[CARD]", "trace": ["t-1"]}


@pytest.mark.django_db
def test_a_body_with_a_nul_character_is_still_dead_lettered():
    # PostgreSQL text and jsonb cannot store NUL; failing to dead-letter would make the message loop.
    consume("bad\x00body", headers={"h": "x\x00y"})

    dead_letter = DeadLetter.objects.get()
    assert dead_letter.body == "bad\ufffdbody"
    assert dead_letter.headers == {"h": "x\ufffdy"}


@pytest.mark.django_db
def test_a_message_that_is_not_json_by_content_type_is_dead_lettered(shop):
    result = order_placed_consume(body=json.dumps(order()).encode(), content_type="application/x-python-serialize")

    assert result.outcome == Outcome.DEAD_LETTERED
    assert result.dead_letter.error == (
        "content type 'application/x-python-serialize' is not accepted; publish application/json"
    )
    assert Payment.objects.count() == 0


@pytest.mark.parametrize(
    ("username", "role", "is_active"),
    [
        ("someone-else", ApiRole.STOREFRONT, True),
        ("shop", ApiRole.FINANCE, True),
        ("shop", ApiRole.STOREFRONT, False),
    ],
    ids=["unknown", "finance", "inactive"],
)
@pytest.mark.django_db
def test_a_message_for_a_client_that_is_not_an_active_storefront_is_dead_lettered(simulator, username, role, is_active):
    UserFactory(username=username, api_role=role, is_active=is_active)

    result = consume(order())

    assert result.outcome == Outcome.DEAD_LETTERED
    assert DeadLetter.objects.get().error == "client: shop is not an active storefront API client. (does_not_exist)"
    assert Payment.objects.count() == 0
    assert simulator.call_count("create_intent") == 0


@pytest.mark.django_db
def test_a_second_message_for_the_same_order_with_another_amount_is_dead_lettered(shop, simulator):
    payment = consume(order()).payment

    result = consume(order(amount=9900))

    assert result.outcome == Outcome.DEAD_LETTERED
    assert result.dead_letter.error == f"order ord_1001 already has payment {payment.public_id} with a different amount"
    assert list(Payment.objects.values_list("amount", flat=True)) == [2500]
    assert simulator.performed_count("create_intent") == 1


@pytest.mark.django_db
def test_the_same_order_id_of_two_clients_makes_two_payments(shop):
    UserFactory(username="other-shop")

    consume(order())
    consume(order(client="other-shop"))

    assert sorted(Payment.objects.values_list("client__username", flat=True)) == ["other-shop", "shop"]


@pytest.mark.django_db
def test_a_lost_create_and_confirm_answer_is_finished_by_the_settle_worker_without_a_second_charge(shop, simulator):
    simulator.inject_fault("create_intent", "timeout")

    first = consume(order())
    settled = services.payment_settle(payment_id=first.payment.pk)
    again = consume(order(), attempt=2)

    assert first.outcome == Outcome.PENDING  # the confirm is recorded with the create: nothing is lost
    assert (first.payment.status, first.payment.pending_operation) == ("processing", "create_confirm")
    assert settled.status == "succeeded"
    assert again.outcome == Outcome.PROCESSED
    assert again.payment.pk == first.payment.pk
    assert simulator.performed_count("create_intent") == 1
    assert simulator.call_count("create_intent") == 2  # the lost answer, then the worker's, with the same key
    assert DeadLetter.objects.count() == 0


def legacy_unconfirmed_payment(simulator):
    """A payment recorded with a plain `create` (as before create + confirm became one call) that never reached
    the gateway: the settle worker would only create its intent."""
    simulator.inject_fault("create_intent", "unavailable")
    fields = {k: v for k, v in order().items() if k != "client"}
    with pytest.raises(GatewayUnavailableError):
        services.payment_create(
            client=User.objects.get(username="shop"), idempotency_key="order:ord_1001", source="worker", **fields
        )
    payment = Payment.objects.get()
    assert (payment.status, payment.pending_operation) == ("requires_confirmation", "create")
    return payment


@pytest.mark.django_db
def test_a_legacy_unconfirmed_payment_asks_for_a_retry_which_confirms_without_a_second_charge(shop, simulator):
    legacy_unconfirmed_payment(simulator)
    simulator.inject_fault("create_intent", "timeout")

    first = consume(order())
    second = consume(order(), attempt=2)

    assert first.outcome == Outcome.RETRY
    assert first.payment.status == "requires_confirmation"
    assert second.outcome == Outcome.PROCESSED
    assert second.payment.pk == first.payment.pk
    assert second.payment.status == "succeeded"
    assert simulator.performed_count("create_intent") == 1
    assert simulator.performed_count("confirm_intent") == 1
    assert DeadLetter.objects.count() == 0


@pytest.mark.django_db
def test_the_last_attempt_without_gateway_dead_letters_a_legacy_unconfirmed_payment(shop, simulator):
    legacy_unconfirmed_payment(simulator)
    simulator.inject_fault("create_intent", "unavailable")

    result = consume(order(), attempt=MAX_ATTEMPTS)

    payment = Payment.objects.get()
    assert result.outcome == Outcome.DEAD_LETTERED
    assert result.dead_letter.error == (
        f"gateway_unavailable after {MAX_ATTEMPTS} attempts: payment {payment.public_id} was not confirmed"
    )
    assert payment.status == "requires_confirmation"
    assert payment.pending_operation == "create"  # the settle worker still creates the intent


@pytest.mark.django_db
def test_a_create_and_confirm_timeout_leaves_the_payment_processing_for_the_settle_worker(shop, simulator):
    simulator.inject_fault("create_intent", "timeout")

    result = consume(order())

    assert result.outcome == Outcome.PENDING
    assert result.payment.status == "processing"
    assert result.payment.pending_operation == "create_confirm"
    assert DeadLetter.objects.count() == 0


@pytest.mark.django_db
def test_a_nul_character_in_metadata_is_dead_lettered_as_malformed(shop, simulator):
    # PostgreSQL's jsonb refuses \u0000: validation refuses it first, as the API does.
    result = consume(order(metadata={"note": "a\x00b"}))

    assert result.outcome == Outcome.DEAD_LETTERED
    assert result.dead_letter.error == "metadata[note]: Strings must not contain NUL characters. (parameter_invalid)"
    assert Payment.objects.count() == 0
    assert simulator.call_count("create_intent") == 0


# --- through the broker, with a real worker ---------------------------------------------------------
@pytest.fixture
def order_queue():
    """The order.placed queue, empty at the start and the end.

    List it before `worker`: it is then torn down after the worker stopped, when a message the worker
    held unacknowledged has gone back to the queue, so no later test's worker consumes it.
    """
    with Connection(settings.CELERY_BROKER_URL) as conn:
        queue = order_placed_queue()(conn.default_channel)
        queue.declare()
        queue.purge()
        yield queue
        queue.purge()


@contextmanager
def order_producer():
    with Connection(settings.CELERY_BROKER_URL) as conn:
        yield Producer(conn.default_channel, exchange=orders_exchange())


def publish(producer, message) -> None:
    if isinstance(message, str):
        producer.publish(message, routing_key=ROUTING_KEY, content_type="application/json", content_encoding="utf-8")
    else:
        producer.publish(message, routing_key=ROUTING_KEY, serializer="json", headers={"source": "test"})


def payment_of(order_id: str, status: str) -> Payment | None:
    return Payment.objects.filter(order_id=order_id, status=status).first()


@pytest.mark.django_db(transaction=True)
def test_the_worker_turns_the_same_message_published_twice_into_one_payment(shop, simulator, order_queue, worker):
    with order_producer() as producer:
        publish(producer, order())
        publish(producer, order())
        publish(producer, order(order_id="ord_1002"))  # handled after both copies: one queue, in order

    wait_for(lambda: payment_of("ord_1002", "succeeded"), timeout=10)

    assert list(Payment.objects.filter(order_id="ord_1001").values_list("status", flat=True)) == ["succeeded"]
    assert Payment.objects.count() == 2
    assert simulator.performed_count("create_intent") == 2
    assert DeadLetter.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_the_worker_dead_letters_bad_messages_and_keeps_consuming(shop, simulator, order_queue, worker):
    with order_producer() as producer:
        publish(producer, f"{{not json {CARD}")
        publish(producer, order(order_id="ord_nul", metadata={"note": "\x00"}))  # refused by validation
        publish(producer, order())

    payment = wait_for(lambda: payment_of("ord_1001", "succeeded"), timeout=10)

    dead_letters = list(DeadLetter.objects.order_by("pk"))
    assert [d.error.split(":")[0] for d in dead_letters] == ["body is not JSON", "metadata[note]"]
    assert dead_letters[0].body == "{not json [CARD]"
    assert dead_letters[1].headers == {"source": "test"}
    assert list(Payment.objects.all()) == [payment]


@pytest.mark.django_db(transaction=True)
def test_the_worker_handles_a_message_again_when_the_gateway_was_down_before_the_intent(
    shop, simulator, order_queue, worker
):
    simulator.inject_fault("create_intent", "unavailable")

    with order_producer() as producer:
        publish(producer, order())

    payment = wait_for(lambda: payment_of("ord_1001", "succeeded"), timeout=10)

    assert payment.amount_received == 2500
    assert simulator.performed_count("create_intent") == 1
    assert simulator.call_count("confirm_intent") == 0
    assert DeadLetter.objects.count() == 0


def test_the_demo_command_publishes_order_placed_to_the_orders_exchange(order_queue):
    call_command("publish_order_placed", "--client", "order-shop", "--order-id", "ord_9", "--times", "2")

    messages = [order_queue.get(no_ack=True) for _ in range(3)]

    assert messages[2] is None
    assert [m.delivery_info["routing_key"] for m in messages[:2]] == ["order.placed", "order.placed"]
    assert [json.loads(m.body) for m in messages[:2]] == [
        {
            "client": "order-shop",
            "order_id": "ord_9",
            "customer_id": "cus_demo",
            "amount": 1999,
            "currency": "usd",
            "capture_method": "automatic",
        }
    ] * 2
