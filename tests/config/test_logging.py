"""JSON logs with a request id; card numbers and secrets never reach a log line."""

import io
import json
import logging

import pytest
from django.test import Client

from config.logging import JsonFormatter, RequestIdFilter, SensitiveDataFilter, request_id_var
from config.security import contains_card_number, mask_sensitive


@pytest.fixture
def log_stream():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(SensitiveDataFilter())
    logger = logging.getLogger("tests.masking")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger, stream
    logger.removeHandler(handler)


def _lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize("card", ["4242424242424242", "4242 4242 4242 4242", "4242-4242-4242-4242", "378282246310005"])
def test_card_numbers_are_masked_in_message_and_args(log_stream, card):
    logger, stream = log_stream

    logger.info("charging card %s for order", card)
    logger.info(f"inline {card} here")

    text = stream.getvalue()
    assert card not in text
    assert "4242424242" not in text
    assert "3782822463" not in text
    assert [line["message"] for line in _lines(stream)] == ["charging card [CARD] for order", "inline [CARD] here"]


def test_digit_run_failing_luhn_is_kept(log_stream):
    logger, stream = log_stream

    logger.info("order 4242424242424241 shipped")

    assert _lines(stream)[0]["message"] == "order 4242424242424241 shipped"


def test_stripe_secrets_and_authorization_are_masked(log_stream):
    logger, stream = log_stream

    logger.warning("webhook secret whsec_abc123XYZ and key sk_live_51Habc, rk_test_9xyz")
    logger.info("headers", extra={"headers": {"Authorization": "Bearer eyJhbGciOi.payload.sig"}})
    logger.info("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc.def")

    text = stream.getvalue()
    for secret in ("whsec_abc123XYZ", "sk_live_51Habc", "rk_test_9xyz", "eyJhbGciOi"):
        assert secret not in text
    assert _lines(stream)[0]["message"] == "webhook secret [REDACTED] and key [REDACTED], [REDACTED]"


def test_exception_text_is_masked(log_stream):
    logger, stream = log_stream

    try:
        raise ValueError("card 4242424242424242 with sk_test_abc123")
    except ValueError:
        logger.exception("failed")

    line = _lines(stream)[0]
    assert "4242424242424242" not in line["exception"]
    assert "sk_test_abc123" not in line["exception"]
    assert "ValueError" in line["exception"]


def test_request_id_is_in_the_log_line(log_stream):
    logger, stream = log_stream
    token = request_id_var.set("req-42")
    try:
        logger.info("inside a request")
    finally:
        request_id_var.reset(token)

    assert _lines(stream)[0]["request_id"] == "req-42"
    assert _lines(stream)[0]["level"] == "info"


@pytest.mark.django_db
def test_request_logs_carry_the_request_id(log_stream):
    _logger, stream = log_stream
    handler = _logger.handlers[-1]
    django_request = logging.getLogger("django.request")
    django_request.addHandler(handler)
    try:
        Client().get("/no-such-page/", HTTP_X_REQUEST_ID="req-abc")
    finally:
        django_request.removeHandler(handler)

    lines = [line for line in _lines(stream) if line["logger"] == "django.request"]
    assert lines
    assert {line["request_id"] for line in lines} == {"req-abc"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4242424242424242", True),
        ("my card is 4000 0566 5566 5556 ok", True),
        ("5555-5555-5555-4444", True),
        ("ord_4242424242424241", False),
        ("123456789012", False),
        ("2026-11-22", False),
        ("", False),
    ],
)
def test_contains_card_number(text, expected):
    assert contains_card_number(text) is expected
    assert ("[CARD]" in mask_sensitive(text)) is expected


def test_sign_in_secrets_and_keys_are_masked_by_name(log_stream, settings):
    logger, stream = log_stream
    settings.BLIND_INDEX_KEY = "b" * 43 + "="

    logger.info("login body username=ann&password=hunter2-long&otp_token=123456&otp_device=otp_totp.totpdevice/3")
    logger.info(
        "enrolled",
        extra={
            "otp_token": 654321,
            "device": {"bin_key": "3132333435363738393031323334353637383930", "name": "authenticator"},
            "encryption_keys": ["a" * 43 + "="],
        },
    )
    logger.info("otpauth://totp/Payment%20Service%3Aann?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&digits=6")
    logger.info('settings {"ENCRYPTION_KEYS": "%s", "BLIND_INDEX_KEY": "%s"}', "c" * 43 + "=", settings.BLIND_INDEX_KEY)

    text = stream.getvalue()
    for secret in ("hunter2-long", "123456", "654321", "3132333435", "GEZDGNBVGY3TQOJQ", "a" * 43, "c" * 43, "b" * 43):
        assert secret not in text
    lines = _lines(stream)
    assert lines[0]["message"] == (
        "login body username=ann&password=[REDACTED]&otp_token=[REDACTED]&otp_device=[REDACTED]"
    )
    assert lines[1]["otp_token"] == "[REDACTED]"
    assert lines[1]["device"] == {"bin_key": "[REDACTED]", "name": "authenticator"}
    assert lines[1]["encryption_keys"] == "[REDACTED]"
    assert lines[2]["message"] == "otpauth://totp/Payment%20Service%3Aann?secret=[REDACTED]&digits=6"
    assert lines[3]["message"] == 'settings {"ENCRYPTION_KEYS": "[REDACTED]", "BLIND_INDEX_KEY": "[REDACTED]"}'


def test_ordinary_keys_and_words_are_kept(log_stream):
    logger, stream = log_stream

    logger.info("retrying", extra={"idempotency_key": "key-42", "payment_id": "pay_1"})
    logger.info("token refused for client-7; idempotency_key=key-42")

    lines = _lines(stream)
    assert (lines[0]["idempotency_key"], lines[0]["payment_id"]) == ("key-42", "pay_1")
    assert lines[1]["message"] == "token refused for client-7; idempotency_key=key-42"


@pytest.fixture
def task_lines(caplog):
    caplog.set_level(logging.INFO, logger="celery")
    return caplog


def _log_task_lines() -> None:
    from celery.app import trace

    context = {"id": "t-1", "name": "refunds.tasks.submit_refund", "runtime": 0.01, "return_value": "'succeeded'"}
    logging.getLogger("celery.worker.strategy").info(trace.LOG_RECEIVED, context)
    logging.getLogger("celery.app.trace").info(trace.LOG_SUCCESS, context)
    retry = {**context, "exc": "GatewayTimeout()"}
    logging.getLogger("celery.app.trace").info(trace.LOG_RETRY, retry)
    logging.getLogger("celery.app.trace").error(trace.LOG_FAILURE, {**retry, "description": "raised unexpected"})


def test_a_tasks_received_and_succeeded_lines_are_left_out_and_its_retries_and_failures_kept(task_lines):
    _log_task_lines()

    messages = [record.getMessage() for record in task_lines.records]
    assert messages == [
        "Task refunds.tasks.submit_refund[t-1] retry: GatewayTimeout()",
        "Task refunds.tasks.submit_refund[t-1] raised unexpected: GatewayTimeout()",
    ]


def test_log_task_success_keeps_the_routine_lines(task_lines, settings):
    settings.LOG_TASK_SUCCESS = True
    _log_task_lines()

    assert [record.getMessage() for record in task_lines.records][:2] == [
        "Task refunds.tasks.submit_refund[t-1] received",
        "Task refunds.tasks.submit_refund[t-1] succeeded in 0.01s: 'succeeded'",
    ]
