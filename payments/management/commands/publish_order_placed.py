"""`manage.py publish_order_placed --client … [--order-id …] [--times N]`: publish a sample order.placed message."""

import json
import secrets
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from kombu import Connection, Producer

from payments.consumers import ROUTING_KEY, order_placed_queue, orders_exchange


class Command(BaseCommand):
    help = "Publish an order.placed message (docs/order-placed.md) as the order service would, for demos."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--client", required=True, help="username of the storefront API client")
        parser.add_argument("--order-id", default="", help="default: a new ord_… id")
        parser.add_argument("--customer-id", default="cus_demo")
        parser.add_argument("--amount", type=int, default=1999, help="in the currency's minor unit")
        parser.add_argument("--currency", default="usd")
        parser.add_argument("--payment-method", default="", help="e.g. pm_card_visa: the payment is confirmed")
        parser.add_argument("--capture-method", choices=["automatic", "manual"], default="automatic")
        parser.add_argument("--times", type=int, default=1, help="publish the same message N times (idempotency)")

    def handle(self, *args: Any, **options: Any) -> None:
        body: dict[str, Any] = {
            "client": options["client"],
            "order_id": options["order_id"] or f"ord_{secrets.token_hex(6)}",
            "customer_id": options["customer_id"],
            "amount": options["amount"],
            "currency": options["currency"],
            "capture_method": options["capture_method"],
        }
        if options["payment_method"]:
            body["payment_method"] = options["payment_method"]
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=5) as conn:
            order_placed_queue()(conn.default_channel).declare()  # so nothing is dropped before a worker starts
            producer = Producer(conn.default_channel, exchange=orders_exchange())
            for _ in range(options["times"]):
                producer.publish(body, routing_key=ROUTING_KEY, serializer="json", delivery_mode=2, retry=True)
        self.stdout.write(json.dumps(body))
        self.stdout.write(self.style.SUCCESS(f"Published {options['times']} order.placed message(s)."))
