"""Row locks of the outbox: a relay claims a batch with SKIP LOCKED, so any number of relays run at once."""

from django.conf import settings
from django.db.models import QuerySet

from events.models import Event

# The debounce guard of the relay trigger (see events.services): set by the first commit, cleared by the relay.
RELAY_GUARD_KEY = "events:relay-scheduled"


def unpublished_events() -> QuerySet[Event]:
    """Events still to publish (not dead-lettered: attempts left)."""
    return Event.objects.filter(published_at__isnull=True, publish_attempts__lt=settings.OUTBOX_MAX_PUBLISH_ATTEMPTS)


def lock_unpublished_batch(batch_size: int) -> list[Event]:
    """Lock the oldest unpublished events no other relay holds (call inside `transaction.atomic()`)."""
    return list(
        unpublished_events().select_for_update(skip_locked=True, of=("self",)).order_by("sequence")[:batch_size]
    )
