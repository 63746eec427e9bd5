"""Shared fixtures: the suite runs on PostgreSQL and Redis started by `make test`."""

import base64
import itertools
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.cache import cache
from django.db import connection
from django.test.client import ClientMixin
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import ApiRole, User
from tests.accounts.factories import UserFactory, verify_staff_session


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise pytest.UsageError("The suite runs on PostgreSQL: use `make test` (or set DATABASE_URL).")


# CI runs the property tests on hypothesis' fixed examples (HYPOTHESIS_PROFILE=ci, set by .ci/run), so a green run
# stays green on the same code; a local `make test` explores new examples on every run.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


_force_login = ClientMixin.force_login


def force_login_verified(self: ClientMixin, user: User, backend: str | None = None) -> None:
    """`Client.force_login`, and for a staff member the session verified by their authenticator as well.

    The admin is the two-factor site (config/admin/site.py): a session that skipped the code is refused as if
    the user were not staff. Tests that log staff in to look at the admin want the whole sign-in; the sign-in
    itself is tested in tests/accounts/test_staff_sign_in.py.
    """
    _force_login(self, user, backend)
    if user.is_staff:
        verify_staff_session(self, user)


@pytest.fixture(autouse=True, scope="session")
def _staff_logins_pass_the_second_factor():
    """Every test client's `force_login` (pytest-django's `admin_client` too) signs staff in with their code."""
    ClientMixin.force_login = force_login_verified  # type: ignore[method-assign]
    yield
    ClientMixin.force_login = _force_login  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit counters live in the cache (Redis under `make test`): start every test clean."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _broker_sends_not_paused():
    """A broker fault in one test pauses this process's sends (config.tasks); the next test starts unpaused,
    and with no debounced send of an earlier test's still counted as waiting."""
    from config import tasks

    tasks._paused_until.clear()
    tasks._sent_until.clear()
    yield
    tasks._paused_until.clear()
    tasks._sent_until.clear()


@pytest.fixture(autouse=True)
def _risk_rules_read_afresh():
    """Each test's database starts with its own risk settings: none is known from an earlier test (risk.checks)."""
    from risk import checks

    checks._known.clear()
    yield
    checks._known.clear()


def client_for(user: User) -> APIClient:
    """A new APIClient holding a JWT for `user` (one per thread in concurrency tests)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    client.user = user
    return client


@pytest.fixture
def make_client(db):
    """Create an API client user (a new name unless given) and return an APIClient authenticated as it."""

    def make(name: str | None = None, role: str = ApiRole.STOREFRONT) -> APIClient:
        user = UserFactory(api_role=role) if name is None else UserFactory(username=name, api_role=role)
        return client_for(user)

    return make


@pytest.fixture
def shop(db) -> User:
    """A storefront API client as a user (for tests that call services or the admin directly)."""
    return UserFactory(username="shop")


@pytest.fixture
def storefront(make_client) -> APIClient:
    return make_client("storefront-a", ApiRole.STOREFRONT)


@pytest.fixture
def finance(make_client) -> APIClient:
    return make_client("finance-a", ApiRole.FINANCE)


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"


def purge_broker_queues() -> None:
    """Empty every Celery queue on the broker."""
    from config.celery import QUEUES, app

    with app.connection_for_write() as connection:
        for queue in QUEUES:
            connection.default_channel.queue_purge(queue)


@contextmanager
def celery_broker(url: str | None) -> Iterator[None]:
    """Send and consume Celery tasks through the broker at `url` for the block (None: the configured one)."""
    from config.celery import QUEUES, app

    if url is None:
        yield
        return
    saved = app.conf.broker_url, app.conf.broker_heartbeat, app._pool, app.amqp._producer_pool
    saved_transport = app.conf.broker_transport
    app.conf.broker_url = url
    app.conf.broker_transport = None  # the URL's own (config/broker.py's is for the Redis broker only)
    # On AMQP an idle worker's event loop sleeps up to 10 s: heartbeats wake it every second, so it stops at once.
    app.conf.broker_heartbeat = 2
    app._pool, app.amqp._producer_pool = None, None  # new pools, for the new broker
    try:
        with app.connection_for_write() as connection:
            for queue in QUEUES:  # declared as the worker declares them, so they can be purged first
                app.amqp.queues[queue](connection.default_channel).declare()
        yield
    finally:
        if app._pool is not None:
            app._pool.force_close_all()
        app.conf.broker_url, app.conf.broker_heartbeat, app._pool, app.amqp._producer_pool = saved
        app.conf.broker_transport = saved_transport


@pytest.fixture
def worker_broker_url() -> str | None:
    """The broker the `worker` fixture runs on (None: the configured one, Redis); a module may override it."""
    return None


@pytest.fixture
def worker(worker_broker_url):
    """A real Celery worker, in this process, consuming the real broker (Redis unless `worker_broker_url`
    says otherwise; the test's tasks go there too). Use with transaction=True."""
    from config.celery import QUEUES, app

    assert not app.conf.task_always_eager
    with celery_broker(worker_broker_url):
        purge_broker_queues()  # tasks enqueued by earlier tests are not this test's
        with start_worker(
            app, pool="solo", perform_ping_check=False, shutdown_timeout=10, queues=list(QUEUES)
        ) as celery_worker:
            yield celery_worker


@dataclass(frozen=True)
class SentTask:
    """A task message as the broker holds it."""

    name: str
    kwargs: dict
    eta: str | None
    retries: int = 0  # the retry the task starts as (`request.retries`)


@pytest.fixture
def broker_queue():
    """The task messages really sent to the Redis broker, by queue (the queues are emptied before and after)."""
    from config.celery import app

    assert not app.conf.task_always_eager

    def sent(queue: str) -> list[SentTask]:
        with app.connection_for_write() as connection:
            raw = connection.default_channel.client.lrange(queue, 0, -1)
        messages = [json.loads(item) for item in reversed(raw)]  # oldest first
        return [
            SentTask(
                name=message["headers"]["task"],
                kwargs=json.loads(base64.b64decode(message["body"]))[1],
                eta=message["headers"].get("eta"),
                retries=message["headers"].get("retries") or 0,
            )
            for message in messages
        ]

    purge_broker_queues()
    yield sent
    purge_broker_queues()


@pytest.fixture
def tasks_inline():
    """Run Celery tasks inline when enqueued (pair with django_capture_on_commit_callbacks(execute=True))."""
    from config.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def simulator():
    """The simulator gateway (its state lives in the cache, which every test starts empty)."""
    from gateways.simulator import SimulatorGateway

    return SimulatorGateway()


_keys = itertools.count(1)


def new_key() -> str:
    return f"key-{next(_keys)}"


@pytest.fixture
def create_payment(storefront):
    """POST /api/v1/payments/ with a fresh Idempotency-Key; returns the response."""

    def create(client=None, *, key: str | None = None, **overrides):
        body = {"amount": 2000, "currency": "usd", "customer_id": "cus_42", **overrides}
        return (client or storefront).post(
            "/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY=key or new_key()
        )

    return create
