"""Settings of the chaos suite (`make chaos`, bench/chaos.py): the service's own, with the sweepers run often.

Production sweeps the outbox every 30 s and stuck payments and refunds every 60 s; the suite has minutes,
not hours, to see everything settle after each fault, so beat runs them every `CHAOS_SWEEP_SECONDS`. The
stuck-operation thresholds and retry delays come from the environment the driver sets (PAYMENTS_STUCK_AFTER_SECONDS,
REFUNDS_STUCK_AFTER_SECONDS, *_RETRY_BASE_SECONDS, *_RETRY_MAX_SECONDS), read by config/settings.py.
"""

import os

from config.settings import *  # noqa: F403
from config.settings import CELERY_BEAT_SCHEDULE as _PRODUCTION_SCHEDULE

_SWEEP_SECONDS = float(os.environ.get("CHAOS_SWEEP_SECONDS", "5"))
_SWEEPERS = ("outbox-relay-sweep", "payments-sweep-stuck", "refunds-sweep-stuck")

CELERY_BEAT_SCHEDULE = {
    name: ({**entry, "schedule": _SWEEP_SECONDS} if name in _SWEEPERS else entry)
    for name, entry in _PRODUCTION_SCHEDULE.items()
}
