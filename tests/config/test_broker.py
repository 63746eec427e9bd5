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


def test_a_channel_keeps_its_sync_client_until_its_pool_goes(connection):
    """Every publish asks the channel for a client: one is built per pool; a lost pool (or a fork) builds anew."""
    channel = connection.default_channel
    with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
        assert first is second
        assert first.connection_pool is channel.pool
        assert first.ping()
    given = object()
    with channel.conn_or_acquire(given) as passed:
        assert passed is given

    channel._disconnect_pools()
    with channel.conn_or_acquire() as after:
        assert after is not first
        assert after.connection_pool is channel.pool
        assert after.ping()


def test_publishing_through_the_kept_client_delivers(connection):
    queue = Queue("broker-kept-client-test", Exchange("broker-kept-client-test"), routing_key="k")
    producer = connection.Producer()
    for n in range(3):
        producer.publish({"n": n}, exchange=queue.exchange, routing_key="k", declare=[queue])
    bound = queue(connection.default_channel)
    got = [bound.get(no_ack=True).payload["n"] for _ in range(3)]
    assert got == [0, 1, 2]
    assert bound.get(no_ack=True) is None
