"""The API's JSON shape of an event (the feed, the broker message and replays all use it)."""

import json
from datetime import datetime
from typing import Any, Protocol

from config.api.rendering import iso
from events.models import Event


class EventHead(Protocol):
    """What an event's envelope is made of (an `Event`, or a row the relay claimed)."""

    @property
    def public_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def sequence(self) -> int: ...
    @property
    def subject_type(self) -> str: ...
    @property
    def subject_id(self) -> str: ...
    @property
    def schema_version(self) -> int: ...


def _envelope(event: EventHead) -> dict[str, Any]:
    return {
        "id": event.public_id,
        "object": "event",
        "type": event.type,
        "created": iso(event.created_at),
        "sequence": event.sequence,
        "schema_version": event.schema_version,
        "payment": event.subject_id if event.subject_type == "payment" else None,
    }


def render_event(event: Event) -> dict[str, Any]:
    return {**_envelope(event), "data": {"object": event.data}}


_string = json.encoder.encode_basestring_ascii  # json.dumps's own escaping of a string (C), with its quotes


def render_event_json(event: EventHead, data_json: str) -> str:
    """`render_event` as JSON text, around the stored data's own JSON text (never parsed and re-serialised).

    `data_json` is the `data` column as the database renders it (`data::text` on PostgreSQL). The keys
    are those of `_envelope`, in its order (tests/events/test_relay_batches.py compares with the feed).
    """
    payment = _string(event.subject_id) if event.subject_type == "payment" else "null"
    created = iso(event.created_at)
    return (
        f'{{"id":{_string(event.public_id)},"object":"event","type":{_string(event.type)},'
        f'"created":{_string(created) if created else "null"},"sequence":{int(event.sequence)},'
        f'"schema_version":{int(event.schema_version)},"payment":{payment},'
        f'"data":{{"object":{data_json}}}}}'
    )
