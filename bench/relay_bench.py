"""Benchmark the outbox relay: events published per second to the real broker (make bench).

Writes BENCH_EVENTS unpublished events (bulk insert), then times `outbox_relay` draining them to the
`payment.events` exchange on EVENTS_BROKER_URL (Redis under `make bench`), with a bound queue so the
messages are really routed and stored. Prints figures; asserts nothing.
"""

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
from kombu import Connection, Queue  # noqa: E402

from accounts.models import User  # noqa: E402
from events.models import Event  # noqa: E402
from events.relay import EXCHANGE, outbox_relay  # noqa: E402
from payments import services  # noqa: E402

EVENTS = int(os.environ.get("BENCH_EVENTS", "5000"))


def main() -> None:
    call_command("migrate", verbosity=0)
    Event.objects.filter(published_at__isnull=True).update(published_at=django.utils.timezone.now())
    shop, _ = User.objects.get_or_create(username="bench-relay", defaults={"api_role": "storefront"})
    payments = [services.payment_create(client=shop, amount=1000, currency="usd", customer_id="c") for _ in range(50)]
    Event.objects.bulk_create(
        [
            Event(
                type="payment.bench",
                client_id=shop.pk,
                subject_type="payment",
                subject_id=payments[i % 50].public_id,
                data={"n": i},
            )
            for i in range(EVENTS - 50)
        ],
        batch_size=1000,
    )
    with Connection(settings.EVENTS_BROKER_URL) as conn:
        queue = Queue("bench-relay", EXCHANGE, routing_key="#")(conn.default_channel)
        queue.declare()
        queue.purge()
        for batch_size in (100, 500):
            Event.objects.filter(client=shop).update(published_at=None)
            queue.purge()
            started = time.perf_counter()
            published = outbox_relay(batch_size=batch_size)
            elapsed = time.perf_counter() - started
            routed = queue.queue_declare(passive=True).message_count
            print(
                f"outbox relay, batch {batch_size:>3}: {published} events in {elapsed:.2f} s = "
                f"{published / elapsed:,.0f} events/s ({routed} routed to a bound queue)"
            )
        queue.delete()


if __name__ == "__main__":
    main()
