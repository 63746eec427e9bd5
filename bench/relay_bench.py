"""Benchmark the outbox relay: events published per second to the real brokers (make bench).

Writes BENCH_EVENTS unpublished events (bulk insert), then times `outbox_relay` draining them to the
`payment.events` exchange, with a bound durable queue so the messages are really routed and stored:
on EVENTS_BROKER_URL (Redis under `make bench`) and, when RABBITMQ_URL is set (scripts/with-services.sh
sets it), on RabbitMQ with publisher confirms. Two backlogs: "deep", the events spread over 50 payments
(about 100 each: on RabbitMQ a payment's next event waits for the confirm of its previous one, so
this is the worst case), and "wide", one event per payment. Prints figures; asserts nothing.
"""

import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402
from kombu import Connection, Queue  # noqa: E402

from accounts.models import User  # noqa: E402
from events.models import Event  # noqa: E402
from events.relay import EXCHANGE, outbox_relay  # noqa: E402
from payments import services  # noqa: E402

EVENTS = int(os.environ.get("BENCH_EVENTS", "5000"))
BATCH_SIZES = (100, 500)


def wait_for_broker(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout  # RabbitMQ boots in the background of with-services.sh
    while True:
        try:
            with Connection(url, connect_timeout=2) as conn:
                conn.ensure_connection(max_retries=1)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def backlog(shop: User, shape: str) -> None:
    """Replace the bench client's events with EVENTS unpublished ones, deep (50 payments) or wide (one each)."""
    Event.objects.filter(client=shop).delete()
    if shape == "deep":
        subjects = [
            services.payment_create(client=shop, amount=1000, currency="usd", customer_id=f"c{n}").public_id
            for n in range(50)
        ]
    else:
        subjects = [f"pay_bench_{n}" for n in range(EVENTS)]
    have = Event.objects.filter(client=shop).count()  # payment_create wrote some of its own
    Event.objects.bulk_create(
        [
            Event(
                type="payment.bench",
                client_id=shop.pk,
                subject_type="payment",
                subject_id=subjects[i % len(subjects)],
                data={"id": subjects[i % len(subjects)], "object": "payment", "amount": 1000, "n": i},
            )
            for i in range(EVENTS - have)
        ],
        batch_size=1000,
    )


def run(url: str, label: str, shop: User) -> None:
    settings.EVENTS_BROKER_URL = url
    with Connection(url) as conn:
        queue = Queue("bench-relay", EXCHANGE, routing_key="#")(conn.default_channel)
        queue.declare()
        for shape in ("deep", "wide"):
            backlog(shop, shape)
            for batch_size in BATCH_SIZES:
                Event.objects.filter(client=shop).update(published_at=None, publish_attempts=0)
                with connection.cursor() as cursor:  # each run starts without the dead rows of the last
                    cursor.execute(f"VACUUM ANALYZE {Event._meta.db_table}")
                queue.purge()
                started = time.perf_counter()
                published = outbox_relay(batch_size=batch_size)
                elapsed = time.perf_counter() - started
                routed = queue.queue_declare(passive=True).message_count
                print(
                    f"outbox relay, {label:<8} {shape} backlog, batch {batch_size:>3}: {published} events in "
                    f"{elapsed:.2f} s = {published / elapsed:,.0f} events/s ({routed} routed to a bound queue)"
                )
        queue.delete()


def main() -> None:
    logging.getLogger("events.relay").setLevel(logging.WARNING)
    logging.getLogger("payments").setLevel(logging.WARNING)
    logging.getLogger("risk").setLevel(logging.WARNING)
    call_command("migrate", verbosity=0)
    Event.objects.filter(published_at__isnull=True).update(published_at=timezone.now())
    shop, _ = User.objects.get_or_create(username="bench-relay", defaults={"api_role": "storefront"})
    brokers = [(settings.EVENTS_BROKER_URL, Connection(settings.EVENTS_BROKER_URL).transport.driver_type)]
    rabbitmq = os.environ.get("RABBITMQ_URL")
    if rabbitmq:
        wait_for_broker(rabbitmq)
        brokers.append((rabbitmq, "rabbitmq"))
    else:
        print("outbox relay on RabbitMQ: not measured (RABBITMQ_URL is unset; scripts/with-services.sh sets it)")
    for url, label in brokers:
        run(url, label, shop)


if __name__ == "__main__":
    main()
