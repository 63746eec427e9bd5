"""The Celery application: JSON only, late acks, queues per kind of work, routes, time limits.

Queues: `gateway` (calls to the payment gateway: settle payments, submit refunds), `webhooks`
(processing stored Stripe events), `events` (the outbox relay), `default` (everything else,
housekeeping). Settings come from Django's (`CELERY_*`); the beat schedule is `CELERY_BEAT_SCHEDULE`.
"""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

QUEUES = ("default", "gateway", "webhooks", "events")

app = Celery("payment_service")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in QUEUES]
app.conf.task_default_queue = "default"
app.conf.task_routes = {
    "payments.tasks.settle_payment": {"queue": "gateway"},
    "refunds.tasks.submit_refund": {"queue": "gateway"},
    "events.tasks.relay_outbox": {"queue": "events"},
    "payments.tasks.sweep_stuck_payments": {"queue": "default"},
    "refunds.tasks.sweep_stuck_refunds": {"queue": "default"},
    "webhooks.tasks.*": {"queue": "webhooks"},
}
app.autodiscover_tasks()
app.steps["consumer"].add("payments.consumers:OrderPlacedConsumer")  # order.placed messages (docs/order-placed.md)
