"""Every write to the webhook inbox: verify and store once, process once, recover missed events.

Receiving is one insert: the raw event is stored under Stripe's unique event id (a duplicate
delivery ends in `IntegrityError` and changes nothing), and after commit a drain of the stored
events is triggered, debounced: the first commit sets a guard in the cache and sends one
`drain_received_events` task `WEBHOOKS_DRAIN_DELAY_MS` later; commits while the guard stands send
nothing, since that drain will see their rows. The guard stands while the drain works (one drain at a
time, however fast events arrive): the drain clears it only when it finds nothing left, then reads
once more, so a commit either finds no guard and sends a drain, or is read by that last pass (a drain
that fails clears it too; one whose worker dies is delivered again, `acks_late`). Under
any load at most one drain waits in the `webhooks` queue; the recovery task (beat) is the safety net
for a drain that was lost.

Processing locks the webhook row, so one event is applied once however many workers, drains or
operators run it, and applies the event in the same transaction as the row's new status.
"""

import json
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from config.api.parsers import unstorable
from config.rows import insert, update_row
from config.tasks import publish, publish_debounced, registered
from gateways import stripe_gateway
from gateways.stripe import StripeGateway
from webhooks import handlers
from webhooks.errors import InvalidWebhook, WebhookProcessingFailed
from webhooks.locks import WEBHOOK_DRAIN_GUARD_KEY, lock_webhook_event
from webhooks.metrics import webhook_count, webhook_processed_count
from webhooks.models import ReceivedVia, WebhookCursor, WebhookEvent, WebhookStatus

logger = logging.getLogger(__name__)

MAX_ID_LENGTH = 255
MAX_TYPE_LENGTH = 128
MAX_ERROR_LENGTH = 20_000
DRAIN_TASK = "webhooks.tasks.drain_received_events"
# How long the guard stands if the drain it announced is lost (a broker hiccup): then the next commit triggers again.
GUARD_SECONDS = 5
RECOVERY_CURSOR = "stripe_events"
RECOVERY_PAGE_SIZE = 100  # rows stored per bulk check (Stripe pages hold up to 100)


@dataclass(frozen=True)
class VerifiedEvent:
    """A Stripe event whose signature (or source) we trust, with the fields the inbox keeps."""

    stripe_id: str
    type: str
    api_version: str
    livemode: bool
    created_at: datetime | None
    body: str


# --- receiving ----------------------------------------------------------------------------------
def webhook_receive(*, payload: bytes, signature: str | None) -> WebhookEvent | None:
    """Verify a delivery, store it once and trigger its processing (the drain) after commit.

    Returns the new row, or None for a duplicate delivery (which changes nothing).

    :raises InvalidWebhook: missing, malformed, wrong, stale or future-dated signature; a body that
        is too large, not JSON or not an event. Nothing is stored.
    """
    try:
        event = webhook_verify(payload=payload, signature=signature)
    except InvalidWebhook:
        webhook_count("unknown", "invalid_signature")
        raise
    row, _ = webhook_event_store(event=event, via=ReceivedVia.WEBHOOK)
    if row is None:
        webhook_count(event.type, "duplicate")
    return row


def webhook_verify(*, payload: bytes, signature: str | None) -> VerifiedEvent:
    """Check the `Stripe-Signature` header against the raw body and read the event.

    :raises InvalidWebhook: see `webhook_receive`.
    """
    limit = settings.WEBHOOK_MAX_BODY_BYTES
    if len(payload) > limit:
        raise InvalidWebhook(f"The request body exceeds {limit} bytes.", code="body_too_large")
    if not signature:
        raise InvalidWebhook("The Stripe-Signature header is missing.", code="signature_missing")
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        logger.error("STRIPE_WEBHOOK_SECRET is not set: every Stripe webhook is refused")
        raise InvalidWebhook()
    tolerance = settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS
    signed_at = _signed_at(signature)
    if signed_at is None:
        raise InvalidWebhook("The Stripe-Signature header is malformed.")
    try:
        text = payload.decode("utf-8")  # what Stripe signs (the SDK verifies text); decoding is not parsing
    except UnicodeDecodeError as exc:
        raise InvalidWebhook("The body is not a JSON Stripe event.", code="payload_invalid") from exc
    # The signature first, on the body as received: nothing an unauthenticated sender wrote is parsed.
    try:
        stripe.WebhookSignature.verify_header(text, signature, secret, tolerance)
    except stripe.SignatureVerificationError as exc:
        raise InvalidWebhook(_signature_message(signed_at, tolerance)) from exc
    # The SDK checks only the past side of the tolerance; a timestamp from the future is refused too.
    if signed_at > time.time() + tolerance:
        raise InvalidWebhook(_signature_message(signed_at, tolerance))
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # not JSON, or nested deeper than the decoder's stack
        raise InvalidWebhook("The body is not a JSON Stripe event.", code="payload_invalid") from exc
    if not isinstance(data, dict):
        raise InvalidWebhook("The body is not a Stripe event.", code="payload_invalid")
    return _event_from(data, body=text)


def _signed_at(header: str) -> int | None:
    """The `t=` of a Stripe-Signature header (the same reading as the SDK's), or None."""
    for item in header.split(","):
        name, _, value = item.partition("=")
        if name.strip() == "t":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _signature_message(signed_at: int, tolerance: int) -> str:
    if abs(time.time() - signed_at) > tolerance:
        return f"The signature timestamp is more than {tolerance} seconds from now."
    return "The signature does not match the body."


def _event_from(data: dict[str, Any], *, body: str) -> VerifiedEvent:
    """Read the fields the inbox keeps, refusing anything that is not a Stripe event."""
    event_id, event_type, payload = data.get("id"), data.get("type"), data.get("data")
    valid = (
        data.get("object") == "event"
        and isinstance(event_id, str)
        and event_id.startswith("evt_")
        and len(event_id) <= MAX_ID_LENGTH
        and isinstance(event_type, str)
        and 0 < len(event_type) <= MAX_TYPE_LENGTH
        and not unstorable(event_id + event_type)  # a NUL or a lone surrogate: PostgreSQL cannot store it
        and isinstance(payload, dict)
        and isinstance(payload.get("object"), dict)
    )
    if not valid:
        raise InvalidWebhook("The body is not a Stripe event.", code="payload_invalid")
    created = data.get("created")
    return VerifiedEvent(
        stripe_id=str(event_id),
        type=str(event_type),
        api_version=str(data.get("api_version") or "")[:64],
        livemode=data.get("livemode") is True,
        created_at=datetime.fromtimestamp(created, tz=UTC) if isinstance(created, int) else None,
        body=body,
    )


def webhook_event_store(*, event: VerifiedEvent, via: str) -> tuple[WebhookEvent | None, bool]:
    """Insert the event once (Stripe's id is unique) and trigger the drain that processes it after commit.

    Returns (row, True) for a new event and (None, False) for one already stored.
    """
    try:
        with transaction.atomic():
            row = insert(
                WebhookEvent(
                    stripe_id=event.stripe_id,
                    type=event.type,
                    api_version=event.api_version,
                    livemode=event.livemode,
                    created_at=event.created_at,
                    body=event.body,
                    received_via=via,
                )
            )
            # robust: a broker outage must not turn an accepted event into a 500; recovery triggers a drain later.
            # A named function, not functools.partial: Django logs a robust callback's failure by its __qualname__.
            transaction.on_commit(webhook_drain_trigger, robust=True)
    except IntegrityError:
        logger.info("Duplicate Stripe event ignored", extra={"stripe_event": event.stripe_id, "via": via})
        return None, False
    logger.info("Stripe event stored", extra={"stripe_event": event.stripe_id, "type": event.type, "via": via})
    return row, True


def webhook_drain_trigger() -> None:
    """Send a drain of the stored events, debounced: nothing while the guard of a drain still to start stands.

    Called after the commit that stored an event. Without the cache (an outage) the drain is sent anyway.
    """
    # A drain not sent is not lost: the recovery task (beat) sends one for events left `received`.
    publish_debounced(
        registered(DRAIN_TASK),
        guard_key=WEBHOOK_DRAIN_GUARD_KEY,
        delay_ms=settings.WEBHOOKS_DRAIN_DELAY_MS,
        guard_seconds=GUARD_SECONDS,
    )


# --- processing ---------------------------------------------------------------------------------
PROCESSABLE = frozenset({WebhookStatus.RECEIVED, WebhookStatus.FAILED})


@dataclass(frozen=True)
class DrainResult:
    processed: int  # rows applied (or found already done by a concurrent run)
    failed: int  # rows whose processing raised: now `failed`, handed to `on_failure`
    more: bool  # the run stopped at its limit: a new run must go on (the guard still stands)


def webhook_events_drain(
    *,
    on_failure: Callable[[int], object],
    batch_size: int,
    limit: int,
    on_empty: Callable[[], object] = lambda: None,
) -> DrainResult:
    """Process the events left `received`, by id, each as `webhook_event_process` applies one (so exactly once).

    Rows are read `batch_size` at a time after the last id seen, so a run ends however fast rows arrive.
    When a read finds nothing left, `on_empty` is called (the task clears the trigger's guard there: until
    then, commits send no drain, since this run goes on reading) and the run reads once more from the
    first id, for the rows committed before that moment, behind the last id seen included (ids are taken
    before commits, so a row can commit behind a run); it ends when that pass finds nothing left. At most
    `limit` rows per run: a run that reaches it says `more`, and a new run goes on (and ends as above).
    A row that fails is left `failed` and its id given to `on_failure` (which schedules its retries).
    A row another transaction holds is passed over (`SKIP LOCKED`): that one is applying it (a retry, an
    operator, a drain sent by the recovery task). The task passes `WEBHOOKS_DRAIN_BATCH_SIZE` and
    `WEBHOOKS_DRAIN_MAX_PER_RUN`.
    """
    processed = failed = 0
    after = 0
    emptied = False
    while processed + failed < limit:
        ids = list(
            WebhookEvent.objects.filter(status=WebhookStatus.RECEIVED, pk__gt=after)
            .order_by("pk")
            .values_list("pk", flat=True)[: min(batch_size, limit - processed - failed)]
        )
        if not ids:
            if emptied:
                return DrainResult(processed=processed, failed=failed, more=False)
            on_empty()  # from here a commit sends a drain of its own; what committed before, the last pass reads
            emptied, after = True, 0
            continue
        for webhook_event_id in ids:
            try:
                _process(webhook_event_id, PROCESSABLE, skip_held=True)
            except WebhookEvent.DoesNotExist:
                continue  # gone since the batch was read, or held by the run applying it
            except WebhookProcessingFailed:
                failed += 1
                on_failure(webhook_event_id)
            else:
                processed += 1
        after = ids[-1]
    return DrainResult(processed=processed, failed=failed, more=True)


def webhook_event_process(*, webhook_event_id: int) -> WebhookEvent:
    """Apply a stored event through the payments and refunds services, exactly once.

    The row is locked for the whole transaction, so concurrent runs wait and then find it done;
    rows already `processed` or `ignored` are returned untouched.

    :raises WebhookProcessingFailed: the event could not be applied; the row is `failed`, with the
        traceback, and nothing of the attempt was kept.
    """
    row, _ = _process(webhook_event_id, PROCESSABLE)
    return row


def webhook_event_reprocess(*, webhook_event_id: int) -> str:
    """Run a `received`, `failed` or `ignored` event again (operators); `processed` ones are left alone.

    Returns the row's new status, or "skipped" when it was already processed.
    """
    try:
        row, ran = _process(webhook_event_id, PROCESSABLE | {WebhookStatus.IGNORED})
    except WebhookProcessingFailed:
        return WebhookStatus.FAILED
    return row.status if ran else "skipped"


# What processing writes on an event's row.
OUTCOME_FIELDS = ("status", "ignored_reason", "payment", "refund", "attempts", "last_error", "processed_at")


def _process(
    webhook_event_id: int, processable: frozenset[str], *, skip_held: bool = False
) -> tuple[WebhookEvent, bool]:
    event_type = "unknown"
    try:
        with transaction.atomic():
            row = lock_webhook_event(webhook_event_id, skip_locked=skip_held)
            if row.status not in processable:
                return row, False
            event_type = row.type
            outcome = handlers.dispatch(row.type, json.loads(row.body)["data"]["object"])
            row.status = outcome.status
            row.ignored_reason = outcome.ignored_reason
            row.payment = outcome.payment
            row.refund = outcome.refund
            row.attempts += 1
            row.last_error = ""
            row.processed_at = timezone.now()
            # Not the (encrypted, unchanged) body again; its UPDATE compiled once (`config.rows`): no signals listen.
            if update_row(row, OUTCOME_FIELDS, where={"id": row.pk}) == 0:
                raise DatabaseError("Save with update_fields did not affect any rows.")  # as save() says of a row gone
    except WebhookEvent.DoesNotExist:
        raise
    except Exception as exc:
        _record_failure(webhook_event_id, processable)
        webhook_count(event_type, "failed")
        logger.exception("Unable to process Stripe event", extra={"webhook_event_id": webhook_event_id})
        raise WebhookProcessingFailed(f"Webhook event {webhook_event_id} failed: {exc!r}") from exc
    webhook_processed_count(row)
    logger.info(
        "Stripe event processed",
        extra={"stripe_event": row.stripe_id, "type": row.type, "status": row.status, "reason": row.ignored_reason},
    )
    return row, True


def _record_failure(webhook_event_id: int, processable: frozenset[str]) -> None:
    # Only a row still waiting: a concurrent run may have processed it since our attempt rolled back.
    WebhookEvent.objects.filter(pk=webhook_event_id, status__in=processable).update(
        status=WebhookStatus.FAILED,
        ignored_reason="",
        attempts=F("attempts") + 1,
        last_error=traceback.format_exc()[-MAX_ERROR_LENGTH:],
    )


# --- recovery -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecoveryResult:
    listed: int
    stored: int
    requeued: int


def webhook_recover(*, gateway: StripeGateway | None = None) -> RecoveryResult:
    """Store, once, any handled event in Stripe's recent event list that never reached us, and
    send a drain for events left `received` (a drain lost to a broker outage).

    The cursor (the newest event time seen) lives in the database; each run reads back
    `WEBHOOKS_RECOVERY_OVERLAP_SECONDS` before it, since duplicates cost nothing.

    :raises stripe.StripeError: Stripe did not answer; the cursor is not moved.
    """
    now = int(time.time())
    cursor, _ = WebhookCursor.objects.get_or_create(
        name=RECOVERY_CURSOR, defaults={"position": now - settings.WEBHOOKS_RECOVERY_LOOKBACK_SECONDS}
    )
    since = cursor.position - settings.WEBHOOKS_RECOVERY_OVERLAP_SECONDS
    listed = stored = 0
    newest = cursor.position
    page: list[dict[str, Any]] = []
    for data in (gateway or stripe_gateway()).list_events(created_gte=since):
        listed += 1
        newest = max(newest, int(data.get("created") or 0))
        page.append(data)
        if len(page) == RECOVERY_PAGE_SIZE:
            stored += _store_missing(page)
            page = []
    stored += _store_missing(page)
    # Only forward, whatever a concurrent run wrote; never past now (clock skew).
    WebhookCursor.objects.filter(pk=cursor.pk).update(position=Greatest(F("position"), min(newest, now)))
    requeued = _requeue_stuck()
    logger.info("Stripe event recovery ran", extra={"listed": listed, "stored": stored, "requeued": requeued})
    return RecoveryResult(listed=listed, stored=stored, requeued=requeued)


def _store_missing(events: list[dict[str, Any]]) -> int:
    """Insert the handled events of one page that are not stored yet (one query to know which)."""
    wanted = [data for data in events if data.get("type") in handlers.HANDLED_TYPES]
    known = set(
        WebhookEvent.objects.filter(stripe_id__in=[data.get("id") for data in wanted]).values_list(
            "stripe_id", flat=True
        )
    )
    stored = 0
    for data in wanted:
        if data.get("id") in known:
            continue
        try:
            event = _event_from(data, body=json.dumps(data, separators=(",", ":")))
        except InvalidWebhook:
            logger.warning("Stripe listed something that is not an event", extra={"stripe_event": data.get("id")})
            continue
        _, created = webhook_event_store(event=event, via=ReceivedVia.RECOVERY)
        stored += created
    return stored


def webhook_requeue_stuck() -> int:
    """Send a drain when events are left `received` past `WEBHOOKS_RECOVERY_STUCK_SECONDS` (their drain was lost
    to a broker fault); it processes every `received` event. Returns how many were stuck (counted up to 1000)."""
    return _requeue_stuck()


def _requeue_stuck() -> int:
    age = settings.WEBHOOKS_RECOVERY_STUCK_SECONDS
    cutoff = timezone.now() - timedelta(seconds=age)
    stuck = WebhookEvent.objects.filter(status=WebhookStatus.RECEIVED, received_at__lt=cutoff)[:1000].count()
    if stuck:
        publish(registered(DRAIN_TASK))  # past the guard: a safety net sends whatever a lost trigger left standing
    return stuck
