"""The API's JSON shape of an event (the feed, the broker message and replays all use it)."""

from typing import Any

from config.api.rendering import iso
from events.models import Event


def render_event(event: Event) -> dict[str, Any]:
    return {
        "id": event.public_id,
        "object": "event",
        "type": event.type,
        "created": iso(event.created_at),
        "sequence": event.sequence,
        "payment": event.subject_id if event.subject_type == "payment" else None,
        "data": {"object": event.data},
    }
