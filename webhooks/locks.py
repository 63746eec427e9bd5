"""Row locks of the webhook inbox: one event is processed by one worker at a time."""

from webhooks.models import WebhookEvent

# The debounce guard of the drain trigger (see webhooks.services): set by the first commit, cleared by the drain.
WEBHOOK_DRAIN_GUARD_KEY = "webhooks:drain-scheduled"


def lock_webhook_event(webhook_event_id: int) -> WebhookEvent:
    return WebhookEvent.objects.select_for_update(of=("self",)).get(pk=webhook_event_id)
