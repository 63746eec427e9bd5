"""Row locks of the webhook inbox: one event is processed by one worker at a time."""

from config.rows import lock_row
from webhooks.models import WebhookEvent

# The debounce guard of the drain trigger (see webhooks.services): set by the first commit, cleared by the drain.
WEBHOOK_DRAIN_GUARD_KEY = "webhooks:drain-scheduled"


def lock_webhook_event(webhook_event_id: int, *, skip_locked: bool = False) -> WebhookEvent:
    """`select_for_update(of=("self",)).get(pk=…)`, compiled once (`config.rows.lock_row`): every event takes it.

    :raises WebhookEvent.DoesNotExist: no such row (with `skip_locked`, also: another transaction holds it).
    """
    return lock_row(WebhookEvent, webhook_event_id, skip_locked=skip_locked)
