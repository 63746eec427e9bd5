"""The Redis broker transport of the workers: kombu's, with one failure on connection loss turned into a broker error.

When Redis goes away under a worker holding unacknowledged messages, Celery closes the lost connection
and kombu (5.7) closes the channel after the transport has dropped its connection parameters: restoring
the unacknowledged messages then fails with `AttributeError: 'NoneType' object has no attribute
'hostname'`, which Celery does not expect there and answers by exiting the worker ("Unrecoverable
error"). Here that case raises the broker's `ConnectionError` instead, which Celery's close ignores, so the
worker reconnects as it does for any broker outage. Nothing is lost by skipping the restore there: the
messages stay in the unacknowledged set and kombu puts them back on their queues after the visibility
timeout (`restore_visible`), as it does after a worker crash.
"""

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise RedisConnectionError("The broker connection is closed.")
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)
        return params


class Transport(kombu_redis.Transport):
    Channel = Channel
