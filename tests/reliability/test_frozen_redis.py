"""A frozen Redis (SIGSTOP: connections accepted, nothing answered) must not take the API down.

gunicorn as in production (2 processes x 4 threads, DEBUG=false, the simulator), with the cache, the rate
limiter, the simulator's state and the Celery broker all on one Redis of this test's own. While it is
frozen, 8 concurrent creates (as many as there are threads) must each answer 502/503 within a bound rather
than hang in a socket read, so that reads and `/health/ready`, sent behind them, are still answered.
"""

import json
import secrets
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.tokens import AccessToken

from payments.models import Payment
from tests.accounts.factories import UserFactory
from tests.helpers import wait_for
from tests.reliability.services import gunicorn, redis_server

CREATES = 8  # = WEB_CONCURRENCY x GUNICORN_THREADS: every thread busy with a create
# Each Redis call of a create gives up after its socket timeout (1 s for the cache, 2 s for the broker, then no
# sends for 5 s): about 6-8 s per create, up to twice that for one queued behind another on its process.
CREATE_BOUND_SECONDS = 20.0
READ_BOUND_SECONDS = 20.0  # a read or the probe, queued behind the creates (alone, a read takes about 1 s)
CLIENT_TIMEOUT_SECONDS = 40.0  # what a client waits before giving up (the failure this test looks for)


def _call(base: str, path: str, *, token: str | None = None, body: dict[str, Any] | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers |= {"Content-Type": "application/json", "Idempotency-Key": f"frozen-{uuid.uuid4().hex}"}
    request = urllib.request.Request(base + path, data=data, headers=headers, method="POST" if data else "GET")  # noqa: S310
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=CLIENT_TIMEOUT_SECONDS) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except OSError as exc:  # the client's timeout: no answer at all
        return {"path": path, "status": None, "seconds": time.monotonic() - started, "error": repr(exc)}
    return {"path": path, "status": status, "seconds": time.monotonic() - started, "body": json.loads(raw or b"{}")}


@pytest.mark.django_db(transaction=True)
def test_a_frozen_redis_leaves_reads_and_the_probe_answering(tmp_path):
    jwt_key = secrets.token_urlsafe(50)
    shop = UserFactory()
    token = TokenBackend("HS256", signing_key=jwt_key).encode(AccessToken.for_user(shop).payload)
    payment_body = {"amount": 2000, "currency": "usd", "customer_id": "cus_frozen"}

    with (
        redis_server(tmp_path) as server,
        gunicorn(
            tmp_path, jwt_key=jwt_key, env={"REDIS_URL": server.url, "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "4"}
        ) as base,
    ):
        before = _call(base, "/api/v1/payments/", token=token, body=payment_body)
        assert before["status"] == 201, before
        payment_id = before["body"]["id"]

        server.freeze()
        try:
            with ThreadPoolExecutor(max_workers=CREATES) as pool:
                creates = [
                    pool.submit(_call, base, "/api/v1/payments/", token=token, body=payment_body)
                    for _ in range(CREATES)
                ]
                # Sent behind the creates, while they hold every gunicorn thread.
                ready = _call(base, "/health/ready")
                read = _call(base, f"/api/v1/payments/{payment_id}/", token=token)
                listed = _call(base, "/api/v1/payments/?page_size=5", token=token)
                created = [future.result() for future in creates]
        finally:
            server.thaw()

        def ready_again() -> bool:
            return _call(base, "/health/ready")["status"] == 200

        wait_for(ready_again, timeout=30, interval=0.2)  # and the service comes back by itself
        after = _call(base, "/api/v1/payments/", token=token, body=payment_body)

    timings = {"creates": sorted(round(c["seconds"], 2) for c in created)} | {
        r["path"]: (r["status"], round(r["seconds"], 2)) for r in (ready, read, listed)
    }
    print(f"frozen Redis: {timings}")  # noqa: T201
    assert all(c["status"] in {502, 503} for c in created), created
    assert all(c["seconds"] < CREATE_BOUND_SECONDS for c in created), created
    for create in created:  # the error envelope, not an HTML page or an empty body
        assert create["body"]["error"]["type"] in {"gateway_error", "service_unavailable", "api_error"}, create
    assert (ready["status"], ready["seconds"] < READ_BOUND_SECONDS) == (503, True), ready
    assert {"cache", "broker"} <= set(ready["body"]["failing"]), ready
    assert (read["status"], read["seconds"] < READ_BOUND_SECONDS) == (200, True), read
    assert read["body"]["id"] == payment_id
    assert (listed["status"], listed["seconds"] < READ_BOUND_SECONDS) == (200, True), listed
    assert after["status"] == 201, after
    # Every create of the freeze left its payment (its operation recorded for the worker's stuck sweep).
    assert Payment.objects.filter(client=shop).count() == 2 + CREATES
