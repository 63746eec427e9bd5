"""Row locks of the webhook inbox: one event is processed by one worker at a time."""

from webhooks.models import WebhookEvent


def lock_webhook_event(webhook_event_id: int) -> WebhookEvent:
    return WebhookEvent.objects.select_for_update(of=("self",)).get(pk=webhook_event_id)
