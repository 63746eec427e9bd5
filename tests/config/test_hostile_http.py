"""The edges of /api/ through gunicorn as the image runs it (DEBUG=false), on raw sockets (issue #16).

What Django's test client hides: it strips HEAD bodies itself and skips CSRF checks; the database outage
here is a gunicorn whose DATABASE_URL points at a port nobody listens on.
"""

import json
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import stripe
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import ApiRole
from tests.accounts.factories import UserFactory
from tests.live import database_url, free_port
from tests.live import gunicorn as live_gunicorn

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_hostile_http_0123456789abcdef"
JWT_KEY = secrets.token_urlsafe(64)


def raw(base: tuple[str, int], request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send one HTTP/1.1 request (Connection: close) and read everything the server writes until it closes."""
    with socket.create_connection(base, timeout=15) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    return int(status_line.split()[1]), headers, body


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


def http(base, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes = b""):
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return raw(base, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


@contextmanager
def gunicorn(tmp_path: Path, db_url: str) -> Iterator[tuple[str, int]]:
    """One gunicorn worker (tests/live.py: config/gunicorn.conf.py, DEBUG=false, the simulator) on `db_url`."""
    env = {
        "JWT_SIGNING_KEY": JWT_KEY,
        "DATABASE_URL": db_url,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "WEB_CONCURRENCY": "1",
        "GUNICORN_THREADS": "2",
    }
    with live_gunicorn(tmp_path / "gunicorn.log", env) as port:
        yield ("127.0.0.1", port)


def bearer(user) -> str:
    """An access token for `user` signed with the server's key (the claims this process would put in it)."""
    return "Bearer " + TokenBackend("HS256", JWT_KEY).encode(AccessToken.for_user(user).payload)


def _envelope(response, status: int, code: str) -> dict:
    got_status, headers, body = response
    assert got_status == status, body[:300]
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == code, error
    return error


@pytest.fixture(scope="module")
def server(tmp_path_factory, django_db_setup, django_db_blocker):
    """One gunicorn for the module, on the test database (each test's rows are committed: transactional_db)."""
    with django_db_blocker.unblock():
        url = database_url()
    assert url.startswith("postgres://"), "gunicorn needs the PostgreSQL test database (scripts/with-services.sh)"
    with gunicorn(tmp_path_factory.mktemp("gunicorn"), url) as base:
        yield base


@pytest.fixture
def token(transactional_db) -> str:
    return bearer(UserFactory(api_role=ApiRole.STOREFRONT))


def test_head_answers_carry_no_body(server, token):
    for path, status in [("/api/v1/payments/", 200), ("/api/v1/nope/", 404)]:
        got_status, headers, body = http(server, "HEAD", path, headers={"Authorization": token})

        assert got_status == status
        assert headers["content-type"] == "application/json"
        assert body == b""
    got_status, _, body = http(server, "HEAD", "/api/v1/payments/")  # an error (401) too
    assert (got_status, body) == (401, b"")


def test_a_nul_in_a_path_id_or_query_is_400(server, token):
    _envelope(http(server, "GET", "/api/v1/payments/%00/", headers={"Authorization": token}), 400, "parameter_invalid")
    error = _envelope(
        http(server, "GET", "/api/v1/events/?after=p%00x", headers={"Authorization": token}), 400, "parameter_invalid"
    )
    assert error["param"] == "after"


def test_a_post_without_the_trailing_slash_is_a_json_404(server, token):
    response = http(
        server,
        "POST",
        "/api/v1/payments",
        headers={"Authorization": token, "Content-Type": "application/json"},
        body=b"{}",
    )

    _envelope(response, 404, "resource_missing")


def test_a_disallowed_host_is_a_json_400(server):
    request = b"GET /api/v1/payments/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"

    _envelope(raw(server, request), 400, "parameter_invalid")


def test_payment_responses_are_no_store(server, token):
    status, headers, _ = http(server, "GET", "/api/v1/payments/", headers={"Authorization": token})

    assert status == 200
    assert headers["cache-control"] == "no-store"


def test_oversized_header_fields_are_refused_by_gunicorn_in_the_envelope(server):
    """gunicorn answers 431 itself for a field over limit_request_field_size (8190 bytes), before Django:
    config/gunicorn_errors.py writes the envelope (no X-Request-ID: no request reached the service)."""
    padding = "4111111111111111" + "x" * 9000
    status, headers, body = http(server, "GET", "/api/v1/payments/", headers={"X-Padding": padding})

    error = _envelope((status, headers, body), 431, "headers_too_large")
    assert "x-request-id" not in headers
    assert "4111" not in error["message"]


def test_a_header_gunicorn_cannot_parse_is_a_json_400_that_echoes_nothing(server, token):
    request = (
        b"POST /api/v1/payments/pay_x/capture/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Idempotency-Key: k\x00 4111111111111111\r\nContent-Length: 0\r\n\r\n"
    )

    error = _envelope(raw(server, request), 400, "request_malformed")
    assert "4111" not in error["message"]
    assert "Idempotency" not in error["message"]


# --- PostgreSQL unreachable ---------------------------------------------------------------------
@pytest.fixture
def server_without_database(tmp_path, db):
    with gunicorn(tmp_path, f"postgres://postgres@127.0.0.1:{free_port()}/payments") as base:
        yield base


def test_with_the_database_down_the_api_answers_503_with_retry_after(server_without_database):
    base = server_without_database
    token = bearer(UserFactory.build(id=424242, api_role=ApiRole.STOREFRONT))
    event = json.dumps({"id": "evt_1", "object": "event", "type": "payment_intent.succeeded", "data": {"object": {}}})
    signature = stripe.WebhookSignature.generate_signature_header(event, SECRET, timestamp=int(time.time()))
    responses = [
        http(base, "GET", "/api/v1/payments/", headers={"Authorization": token}),
        http(
            base,
            "POST",
            "/api/v1/auth/token/",
            headers={"Content-Type": "application/json"},
            body=b'{"username": "a", "password": "b"}',
        ),
        http(
            base,
            "POST",
            "/api/v1/webhooks/stripe/",
            headers={"Content-Type": "application/json", "Stripe-Signature": signature},
            body=event.encode(),
        ),
    ]

    for response in responses:
        _envelope(response, 503, "service_unavailable")
        assert int(response[1]["retry-after"]) >= 1
    assert http(base, "GET", "/health/ready")[0] == 503
