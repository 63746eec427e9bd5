"""Consumers of the `payment.events` exchange on a real broker (Redis or RabbitMQ), for the relay tests."""

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kombu import Connection, Queue
from kombu.exceptions import KombuError

from events.models import Event
from events.relay import EXCHANGE
from tests.helpers import wait_for


@contextmanager
def consumer(url: str, name: str, **queue_arguments: Any) -> Iterator[Queue]:
    """A durable queue bound to `payment.events` for every routing key, empty at the start, deleted after."""
    with Connection(url) as conn:
        queue = Queue(name, EXCHANGE, routing_key="#", queue_arguments=queue_arguments or None)(conn.default_channel)
        queue.declare()
        queue.purge()
        try:
            yield queue
        finally:
            queue.delete()


def drain(queue: Queue) -> list:
    messages = []
    while (message := queue.get(no_ack=True)) is not None:
        messages.append(message)
    return messages


def by_subject(messages: list) -> dict[str, list[int]]:
    """The sequences each subject's messages arrived with, in arrival order."""
    arrived: dict[str, list[int]] = {}
    for message in messages:
        arrived.setdefault(message.headers["subject"], []).append(message.headers["sequence"])
    return arrived


def assert_message_is_event(message: Any, event: Event) -> None:
    """The message carries `event` as documented (README "Event messages"), whatever the broker."""
    assert message.properties["message_id"] == event.public_id
    assert message.delivery_info["routing_key"] == event.type
    assert message.content_type == "application/json"
    assert message.headers["event_type"] == event.type
    assert message.headers["sequence"] == event.sequence
    assert message.headers["subject"] == event.subject_id
    assert message.headers["payment_id"] == (event.subject_id if event.subject_type == "payment" else None)
    assert "replay" not in message.headers
    body = json.loads(message.body)
    assert body["id"] == event.public_id
    assert body["sequence"] == event.sequence
    assert body["data"] == {"object": event.data}


def rabbitmq_url_or_fail(timeout: float = 60) -> str:
    """RABBITMQ_URL (set by scripts/with-services.sh), once the node answers; a clear failure otherwise."""
    import pytest

    url = os.environ.get("RABBITMQ_URL")
    if not url:
        pytest.fail(
            "RABBITMQ_URL is not set: the RabbitMQ tests need the node scripts/with-services.sh starts, "
            "which needs rabbitmq-server (apt-get install rabbitmq-server, or scripts/ensure-system-deps.sh).",
            pytrace=False,
        )

    def answers() -> bool:
        try:
            with Connection(url, connect_timeout=2) as conn:
                conn.ensure_connection(max_retries=1)
        except (KombuError, OSError):
            return False
        return True

    try:
        wait_for(answers, timeout=timeout, interval=0.2)  # the node boots in the background (about 4 s)
    except AssertionError:
        log = Path(os.environ.get("RABBITMQ_LOG", "/nonexistent"))
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
        pytest.fail(f"RabbitMQ at {url} did not answer within {timeout} s. Log:\n{tail}")
    return url
