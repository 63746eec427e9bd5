"""Fixtures of the outbox tests: the throwaway RabbitMQ node of scripts/with-services.sh."""

import pytest

from tests.events.brokers import rabbitmq_url_or_fail
from tests.subscriptions.conftest import advance, prices, subscribe  # noqa: F401 - billing flows (test_event_privacy)
from tests.webhooks.conftest import deliver, webhook_secret  # noqa: F401 - signed deliveries, processed inline


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """The AMQP URL of the test RabbitMQ node (the test fails, never skips, if there is none)."""
    return rabbitmq_url_or_fail()
