"""A database outage under a real Celery worker: its tasks are retried with backoff and finish once it is back.

The worker reaches PostgreSQL through a TCP proxy of the test's own; cutting the proxy drops the worker's
connection and refuses new ones, as a PostgreSQL restart does (the test thread keeps its direct connection).
"""

import itertools

import pytest
from celery.signals import task_prerun
from django.db import connection, connections

from config.celery import app
from config.tasks import Task
from gateways.simulator import SimulatorGateway
from payments.models import Payment
from refunds.models import Refund
from tests.helpers import wait_for
from tests.reliability.services import TcpProxy

_keys = itertools.count(1)


@pytest.fixture
def worker_behind_proxy(transactional_db, settings, worker):
    """The real worker (tests/conftest.py), its database connection through a proxy; this thread's stays direct.

    Connections are per thread: before each task, in the worker's thread, its connection is pointed at the proxy.
    """
    settings.TASKS_DB_RETRY_BASE_SECONDS = 0.2
    settings.TASKS_DB_RETRY_MAX_SECONDS = 1.0
    db = connection.settings_dict
    proxy = TcpProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
    proxied = {**db, "HOST": "127.0.0.1", "PORT": str(proxy.port)}

    def through_proxy(**_kwargs) -> None:
        wrapper = connections["default"]
        if wrapper.settings_dict is not proxied:
            wrapper.close()
            wrapper.settings_dict = proxied

    task_prerun.connect(through_proxy, weak=False)
    try:
        yield proxy
    finally:
        task_prerun.disconnect(through_proxy)
        proxy.close()


def test_every_task_retries_a_lost_database():
    app.loader.import_default_modules()
    project = {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}

    assert len(project) >= 10
    assert all(isinstance(task, Task) for task in project.values()), project


def test_a_refund_submitted_while_the_database_is_down_succeeds_once_it_is_back(storefront, worker_behind_proxy):
    proxy = worker_behind_proxy
    body = {
        "amount": 5000,
        "currency": "usd",
        "customer_id": "cus_db",
        "payment_method": "pm_card_visa",
        "confirm": True,
    }
    paid = storefront.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY=f"db-pay-{next(_keys)}")
    assert (paid.status_code, paid.json()["status"]) == (201, "succeeded"), paid.json()

    proxy.down()  # the worker's connection is dropped; its reconnects are refused
    try:
        created = storefront.post(
            f"/api/v1/payments/{paid.json()['id']}/refunds/",
            {"amount": 2000},
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"db-re-{next(_keys)}",
        )
        assert created.status_code == 201, created.json()
        # The worker took the task, could not reach the database, and tried again after a backoff.
        wait_for(lambda: proxy.refused >= 3, timeout=30)
        assert Refund.objects.get(public_id=created.json()["id"]).status == "pending"
    finally:
        proxy.up()

    done = wait_for(
        lambda: Refund.objects.filter(public_id=created.json()["id"], status="succeeded").first(), timeout=30
    )
    assert done.gateway_reference.startswith("re_sim_")
    assert SimulatorGateway().performed_count("create_refund") == 1
    payment = Payment.objects.get(public_id=paid.json()["id"])
    assert (payment.amount_refunded, payment.status) == (2000, "partially_refunded")
