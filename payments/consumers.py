"""The Celery consumer step that feeds `order.placed` messages to `payments.orders`.

It consumes the durable queue `ORDERS_QUEUE`, bound to the topic exchange `ORDERS_EXCHANGE` with the
routing key `order.placed`, on the worker's own broker connection. Messages are handled one at a time
in the worker's consumer (the gateway calls have timeouts) and acknowledged once handled, dead letters
included. Two cases keep the message unacknowledged and handle it again after a delay: the gateway did
not answer before the payment's intent existed, and the database is unreachable.
"""

import logging
from typing import Any

from celery import bootsteps
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections
from kombu import Consumer, Exchange, Queue
from kombu.message import Message

from config.security import mask_sensitive

logger = logging.getLogger(__name__)

ROUTING_KEY = "order.placed"
PREFETCH_COUNT = 10


def orders_exchange() -> Exchange:
    return Exchange(settings.ORDERS_EXCHANGE, type="topic", durable=True)


def order_placed_queue() -> Queue:
    return Queue(settings.ORDERS_QUEUE, orders_exchange(), routing_key=ROUTING_KEY, durable=True)


class OrderPlacedConsumer(bootsteps.ConsumerStep):
    """Registered in `config/celery.py`; every worker consumes the order.placed queue."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._worker_consumer: Any = None
        # Bumped on every (re)start: a retry scheduled on an older channel is dropped, since the
        # broker redelivers the unacknowledged message on the new one.
        self._generation = 0

    def start(self, c: Any) -> None:
        self._worker_consumer = c
        self._generation += 1
        super().start(c)

    def get_consumers(self, channel: Any) -> list[Consumer]:
        return [
            Consumer(channel, queues=[order_placed_queue()], on_message=self._on_message, prefetch_count=PREFETCH_COUNT)
        ]

    def _on_message(self, message: Message) -> None:
        self._handle(message, attempt=1, generation=self._generation)

    def _handle(self, message: Message, *, attempt: int, generation: int) -> None:
        # Imported here, not at the top: Celery loads this step before Django's app registry is ready,
        # and `payments.orders` uses models (the same rule as AppConfig.ready()).
        from payments.orders import RETRY_DELAYS_SECONDS, Outcome, order_placed_consume

        if generation != self._generation:
            return
        close_old_connections()  # a long-running consumer: drop connections the database closed
        try:
            outcome = order_placed_consume(
                body=message.body, headers=message.headers, content_type=message.content_type or "", attempt=attempt
            ).outcome
        except (OperationalError, InterfaceError):
            logger.exception("order.placed message not handled: database unreachable; it will be handled again")
            outcome = Outcome.RETRY
        except Exception:  # even dead-lettering failed: log the (masked) message rather than loop on it
            body = message.body.decode("utf-8", "replace") if isinstance(message.body, bytes) else str(message.body)
            logger.exception("order.placed message dropped", extra={"body": mask_sensitive(body[:2000])})
            outcome = Outcome.DEAD_LETTERED
        finally:
            close_old_connections()
        if outcome != Outcome.RETRY:
            message.ack()
        elif attempt <= len(RETRY_DELAYS_SECONDS):
            delay = RETRY_DELAYS_SECONDS[attempt - 1]
            logger.warning("order.placed message will be handled again", extra={"attempt": attempt, "delay": delay})
            self._worker_consumer.timer.call_after(delay, self._retry, (message, attempt + 1, generation))
        else:
            logger.error("order.placed message requeued after %s attempts", attempt)
            message.requeue()

    def _retry(self, message: Message, attempt: int, generation: int) -> None:
        # Timers may run on their own thread: hand the work back to the consumer's loop.
        self._worker_consumer.call_soon(self._handle, message, attempt=attempt, generation=generation)
