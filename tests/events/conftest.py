"""Fixtures of the outbox tests: the throwaway RabbitMQ node of scripts/with-services.sh."""

import pytest

from tests.events.brokers import rabbitmq_url_or_fail


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """The AMQP URL of the test RabbitMQ node (the test fails, never skips, if there is none)."""
    return rabbitmq_url_or_fail()
