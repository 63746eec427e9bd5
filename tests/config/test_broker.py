"""The workers' Redis transport (config/broker.py) on a real Redis: closing a lost connection never kills a worker."""

import os

import pytest
from kombu import Connection, Exchange, Queue

from config.broker import Transport


@pytest.fixture
def connection():
    url = os.environ["REDIS_URL"]
    with Connection(url, transport=Transport) as conn:
        yield conn


def test_closing_a_lost_connection_with_unacked_messages_is_a_broker_error_not_a_crash(connection):
    """Celery closes a lost connection whose transport already let go of its parameters (kombu 5.7): restoring the
    unacked messages must fail as a connection error, which Celery's close ignores, and the message is kept."""
    queue = Queue("broker-close-test", Exchange("broker-close-test"), routing_key="t")
    producer = connection.Producer()
    producer.publish({"n": 1}, exchange=queue.exchange, routing_key="t", declare=[queue])
    message = queue(connection.default_channel).get(no_ack=False)
    assert message is not None
    assert message.payload == {"n": 1}

    channel = connection.default_channel
    channel._disconnect_pools()  # what a lost connection leaves behind: no pool,
    connection.transport.client = None  # and a transport that let go of its parameters
    with pytest.raises(connection.connection_errors):
        channel.qos.restore_unacked()

    with Connection(os.environ["REDIS_URL"], transport=Transport) as fresh:
        channel = fresh.default_channel
        assert channel.client.hlen(channel.unacked_key) >= 1  # still there for restore_visible
        channel.client.delete(channel.unacked_key, channel.unacked_index_key)
        queue(channel).purge()
