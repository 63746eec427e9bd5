"""Reads of the webhook inbox shared by the admin, the command and the recovery task."""

from collections.abc import Iterable

from django.db.models import QuerySet

from webhooks.models import WebhookEvent, WebhookStatus


def webhook_events_to_process(
    *, failed: bool = False, stripe_ids: Iterable[str] = (), event_type: str = ""
) -> QuerySet[WebhookEvent]:
    """Events an operator asked to (re)process, oldest first.

    By default those never processed (`received`); with `failed`, those that failed; with
    `stripe_ids`, exactly those events whatever their status. `event_type` narrows any of them.
    """
    rows = WebhookEvent.objects.all()
    ids = list(stripe_ids)
    if ids:
        rows = rows.filter(stripe_id__in=ids)
    else:
        rows = rows.filter(status=WebhookStatus.FAILED if failed else WebhookStatus.RECEIVED)
    if event_type:
        rows = rows.filter(type=event_type)
    return rows.order_by("received_at", "id")
