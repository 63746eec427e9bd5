"""Writes of the risk app: assessing a new payment, deciding reviews, the blocklist and the settings.

`risk_assess` and `risk_record` run inside the transaction that creates the payment, called by the
payment core through its port (`payments.ports`, implemented by `risk.assessor.RulesAssessor`). The
review hold itself is the payment's (`Payment.review_state`); review decisions lock the payment, end
the hold through the payment services (which write `payment.review_closed`), record the reviewer on
the assessment and the staff action, all in one transaction, then make any gateway call (capture or
cancel) afterwards through the payment services, outside the transaction.
"""

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from audit.services import staff_action_record
from config.rows import insert
from gateways.base import Gateway
from payments import states
from payments.locks import lock_payment
from payments.models import ChangeSource, Payment, ReviewState
from payments.ports import RiskPreparationStale
from payments.services import payment_cancel, payment_capture, payment_review_close
from risk import checks, engine, metrics
from risk.errors import ReviewNotPending
from risk.locks import lock_blocklist_entry, lock_identities
from risk.models import BlocklistEntry, Decision, RiskAssessment, RiskSettings

logger = logging.getLogger(__name__)
AUTHORIZATION_VALIDITY = timedelta(days=7)  # how long card networks hold an uncaptured authorization (Stripe)


# --- assessing a new payment ------------------------------------------------------------------------
def risk_rules_snapshot(currency: str) -> tuple[engine.Rules, bool]:
    """The rules for `currency` and whether any card fingerprint is blocklisted: one statement, outside transactions."""
    return checks.rules_snapshot(currency)


def risk_rules_known(currency: str) -> tuple[engine.Rules, bool]:
    """`risk_rules_snapshot` as this process last read it: no statement once warm (`risk_assess` checks it)."""
    return checks.rules_known(currency)


def risk_fingerprint_lookup(*, gateway: Gateway, payment_method: str) -> str:
    """Ask the gateway for the card's fingerprint; a failed lookup is logged and counts as none."""
    if not payment_method:
        return ""
    try:
        return gateway.card_fingerprint(payment_method=payment_method)
    except Exception as exc:  # noqa: BLE001 - a read-only lookup; the payment goes on without it
        logger.warning("Card fingerprint lookup failed", extra={"error": type(exc).__name__})
        return ""


def risk_assess(
    *,
    client: User,
    amount: int,
    currency: str,
    customer_id: str,
    email: str = "",
    ip: str | None = None,
    card_fingerprint: str = "",
    rules: engine.Rules | None = None,
    identities_locked: bool = False,
    fingerprint_asked: bool = True,
) -> engine.Assessment:
    """Run the rules for a payment about to be created. Call inside the creating transaction, before the insert:
    it locks the customer, e-mail and IP until that transaction ends so concurrent creations count each other.

    Two statements (three without `rules` read beforehand, by `risk_rules_snapshot` or as this process knows
    them): the identity locks, then the blocklist, the velocity counts and the settings as stored now
    together; a third only when the first-seen rule applies. The rules decided with are the stored ones: when
    they differ from `rules`, those are used (and the counts made again if a window changed, one statement).
    `identities_locked`: the transaction took the locks already (`risk.locks.identity_lock_keys`, with the
    idempotency key's INSERT): one statement fewer.
    `fingerprint_asked`: the card's fingerprint was looked up when a card fingerprint was blocklisted (or there
    is no card). With `False`, a blocklisted fingerprint now raises `RiskPreparationStale`.

    :raises RiskPreparationStale: a card fingerprint is blocklisted now, and this card's was not looked up.
    """
    now = timezone.now()
    rules = rules or checks.rules_load(currency)
    if not identities_locked:
        lock_identities(client=client, customer_id=customer_id, email=email, ip=ip)

    def counted(rules: engine.Rules) -> tuple[tuple[engine.BlocklistHit, ...], checks.Counts, Any]:
        return checks.blocklist_and_velocity(
            client=client,
            customer_id=customer_id,
            email=email,
            ip=ip,
            card_fingerprint=card_fingerprint,
            rules=rules,
            now=now,
            currency=currency,
        )

    hits, (payments, declines), stored = counted(rules)
    if stored is None:  # no settings row (a new database): made with the defaults, then counted with them
        rules = checks.rules_load(currency)
        hits, (payments, declines), stored = counted(rules)
    if stored is not None:
        current, fingerprints_blocked = stored
        if fingerprints_blocked and not fingerprint_asked:
            raise RiskPreparationStale("A card fingerprint is blocklisted now: look this card's up first.")
        if _windows(current) != _windows(rules):
            hits, (payments, declines), _stored = counted(current)
        rules = current
    first_seen = None
    if rules.threshold and rules.first_seen_points and amount >= rules.threshold.first_seen_amount:
        first_seen = not checks.customer_seen_before(client=client, customer_id=customer_id)
    facts = engine.Facts(
        amount=amount,
        currency=currency,
        blocklist_hits=hits,
        payments=payments,
        declines=declines,
        first_seen=first_seen,
    )
    return engine.evaluate(facts, rules)


def _windows(rules: engine.Rules) -> tuple[int, int]:
    return rules.short_window_minutes, rules.long_window_hours


def risk_record(*, payment: Payment, assessment: engine.Assessment, card_fingerprint: str = "") -> RiskAssessment:
    """Store the assessment of a payment just inserted (same transaction); count it on commit."""
    rules = sorted({reason.rule for reason in assessment.reasons})
    row = insert(
        RiskAssessment(
            payment=payment,
            score=assessment.score,
            level=assessment.level,
            decision=assessment.decision,
            reasons=[reason.as_dict() for reason in assessment.reasons],
            settings_version=assessment.settings_version,
            card_fingerprint=card_fingerprint,
        ),
        deferred=True,
    )
    transaction.on_commit(lambda: metrics.count_decision(decision=assessment.decision, rules=rules))
    if assessment.decision != Decision.ALLOW:
        logger.warning(
            "Risk rules held a payment" if assessment.decision == Decision.REVIEW else "Risk rules blocked a payment",
            extra={
                "payment": payment.public_id,
                "score": assessment.score,
                "reasons": [r.code for r in assessment.reasons],
            },
        )
    return row


# --- reviews ------------------------------------------------------------------------------------------
def _pending_assessment(payment: Payment) -> RiskAssessment:
    """The assessment of a payment the caller has just locked, when its review hold is pending.

    The hold is on the payment row, read by the lock itself after any wait, so it is current: every
    decision holds the payment lock.

    :raises ReviewNotPending: no pending review.
    """
    assessment = RiskAssessment.objects.filter(payment=payment).first()
    if assessment is None or payment.review_state != ReviewState.PENDING:
        raise ReviewNotPending()
    return assessment


def _close_review(payment: Payment, assessment: RiskAssessment, *, state: str, actor: User | None, note: str) -> None:
    """End the payment's hold (it writes `payment.review_closed`) and record who decided (payment locked)."""
    payment_review_close(payment, state=state, note=note, notify_assessor=False)
    review_record(assessment, actor=actor, note=note)


def review_record(assessment: RiskAssessment, *, actor: User | None, note: str) -> None:
    """Record on the assessment who closed the review (None: the system) and why."""
    assessment.reviewed_by = actor
    assessment.reviewed_at = timezone.now()
    assessment.review_note = note
    assessment.save(update_fields=["reviewed_by", "reviewed_at", "review_note"])


def _decide(
    *, payment_id: int, actor: User, reason: str, remote_addr: str | None, state: str, extra: dict[str, Any]
) -> Payment:
    # a rejection also records the status it found, since the cancel that follows changes it
    """Close a pending review with staff's decision: review, event and staff action in one transaction.

    :raises ReviewNotPending: no pending review (decided already, or none).
    :raises ValueError: no reason given.
    """
    if not reason.strip():
        raise ValueError("Give a reason for the decision.")
    with transaction.atomic():
        payment = lock_payment(payment_id)
        assessment = _pending_assessment(payment)
        before: dict[str, Any] = {"review_state": ReviewState.PENDING}
        if state == ReviewState.REJECTED:
            before["status"] = payment.status
        _close_review(payment, assessment, state=state, actor=actor, note=reason)
        staff_action_record(
            actor=actor,
            action="review_approve" if state == ReviewState.APPROVED else "review_reject",
            object_type="payment",
            object_id=payment.public_id,
            reason=reason,
            before=before,
            after={"review_state": state, **extra},
            remote_addr=remote_addr,
        )
    transaction.on_commit(lambda: metrics.REVIEWS_CLOSED.labels(outcome=state).inc())
    logger.info("Review decided", extra={"payment": payment.public_id, "actor": actor.pk, "review": state})
    return payment


def review_approve(
    *, payment_id: int, actor: User, reason: str, remote_addr: str | None = None, capture: bool = False
) -> Payment:
    """Approve a held payment: capture becomes possible (and happens now when `capture` is set).

    :raises ReviewNotPending: no pending review (decided already, or none).
    :raises ValueError: no reason given.
    :raises payments.errors.*: from the capture, when `capture` is set (the approval stands).
    """
    payment = _decide(
        payment_id=payment_id,
        actor=actor,
        reason=reason,
        remote_addr=remote_addr,
        state=ReviewState.APPROVED,
        extra={"capture": capture},
    )
    if capture:
        return payment_capture(payment=payment, source=ChangeSource.ADMIN)
    return payment


def review_reject(*, payment_id: int, actor: User, reason: str, remote_addr: str | None = None) -> Payment:
    """Reject a held payment: the review closes, then the payment is canceled and the authorization released.

    :raises ReviewNotPending: no pending review.
    :raises ValueError: no reason given.
    :raises payments.errors.*: from the cancel (a timeout is finished by a worker; the rejection stands).
    """
    payment = _decide(
        payment_id=payment_id, actor=actor, reason=reason, remote_addr=remote_addr, state=ReviewState.REJECTED, extra={}
    )
    return _cancel_if_open(payment, source=ChangeSource.ADMIN, actor=actor)


def _cancel_if_open(payment: Payment, *, source: str, actor: User | None = None) -> Payment:
    if payment.status not in states.CANCELABLE_AFTER_REVIEW:
        return Payment.objects.get(pk=payment.pk)
    return payment_cancel(payment=payment, reason="fraudulent", source=source, actor=actor)


def review_hold_ended(*, payment: Payment, note: str) -> None:
    """The payment core ended a hold (the payment was canceled, failed or overridden while held): record why."""
    assessment = RiskAssessment.objects.filter(payment=payment).first()
    if assessment is None:
        return
    review_record(assessment, actor=None, note=note)
    transaction.on_commit(lambda: metrics.REVIEWS_CLOSED.labels(outcome="closed_by_payment").inc())


def reviews_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Report reviews pending past the reminder age; reject and cancel those past the cancel age.

    Returns the counts: pending, reminded, expired. The queue's gauges are computed at scrape time (risk.metrics).
    """
    now = now or timezone.now()
    settings_row = checks.settings_ensure()
    pending = RiskAssessment.objects.filter(payment__review_state=ReviewState.PENDING)

    overdue = list(
        pending.filter(
            created_at__lte=now - timedelta(hours=settings_row.review_remind_hours), reminded_at__isnull=True
        )
        .select_related("payment")
        .order_by("created_at")[:500]
    )
    for assessment in overdue:
        logger.warning(
            "Payment review overdue",
            extra={
                "payment": assessment.payment.public_id,
                "pending_hours": int((now - assessment.created_at).total_seconds() // 3600),
            },
        )
    if overdue:
        RiskAssessment.objects.filter(pk__in=[a.pk for a in overdue]).update(reminded_at=now)
        metrics.REVIEWS_OVERDUE.inc(len(overdue))

    expired_ids = list(
        pending.filter(created_at__lte=now - timedelta(hours=settings_row.review_cancel_hours))
        .order_by("created_at")
        .values_list("payment_id", flat=True)[:500]
    )
    expired = 0
    for payment_id in expired_ids:
        if _expire_review(payment_id, hours=settings_row.review_cancel_hours):
            expired += 1
    count = pending.count()
    return {"pending": count, "reminded": len(overdue), "expired": expired}


def _expire_review(payment_id: int, *, hours: int) -> bool:
    with transaction.atomic():
        payment = lock_payment(payment_id)
        try:
            assessment = _pending_assessment(payment)
        except ReviewNotPending:
            return False
        _close_review(
            payment,
            assessment,
            state=ReviewState.REJECTED,
            actor=None,
            note=f"Not reviewed within {hours} h: canceled before the authorization expires.",
        )
    metrics.REVIEWS_CLOSED.labels(outcome="expired").inc()
    logger.warning("Payment review expired; canceling the payment", extra={"payment": payment.public_id})
    try:
        _cancel_if_open(payment, source=ChangeSource.WORKER)
    except Exception:  # noqa: BLE001 - a timeout is settled by the worker; other payments must still be swept
        logger.exception("Canceling an expired review's payment failed", extra={"payment": payment.public_id})
    return True


# --- blocklist ------------------------------------------------------------------------------------------
def blocklist_add(
    *,
    kind: str,
    value: str,
    reason: str,
    actor: User,
    client: User | None = None,
    expires_at: datetime | None = None,
    remote_addr: str | None = None,
) -> BlocklistEntry:
    """Add an entry (normalized) and record the staff action.

    :raises ValueError: malformed value, no reason, or the value is already actively blocklisted.
    """
    normalized = checks.normalize(kind, value)
    if not reason.strip():
        raise ValueError("Give a reason for blocking.")
    now = timezone.now()
    with transaction.atomic():
        existing = BlocklistEntry.objects.filter(checks.active_entries(now), kind=kind, value=normalized)
        existing = existing.filter(client=client) if client else existing.filter(client__isnull=True)
        if existing.exists():
            raise ValueError(f"{normalized} is already on the blocklist.")
        entry = BlocklistEntry.objects.create(
            kind=kind, value=normalized, client=client, reason=reason, created_by=actor, expires_at=expires_at
        )
        staff_action_record(
            actor=actor,
            action="blocklist_add",
            object_type="blocklist_entry",
            object_id=str(entry.pk),
            reason=reason,
            after={
                "kind": kind,
                "value": normalized,
                "client": client.pk if client else None,
                "expires_at": expires_at,
            },
            remote_addr=remote_addr,
        )
    logger.info("Blocklist entry added", extra={"entry": entry.pk, "kind": kind, "actor": actor.pk})
    return entry


def blocklist_expire(*, entry_id: int, actor: User, reason: str = "", remote_addr: str | None = None) -> bool:
    """Expire an active entry now. Returns False when it had already expired."""
    now = timezone.now()
    with transaction.atomic():
        entry = lock_blocklist_entry(entry_id)
        if entry.expires_at is not None and entry.expires_at <= now:
            return False
        before = {"expires_at": entry.expires_at}
        entry.expires_at = now
        entry.save(update_fields=["expires_at"])
        staff_action_record(
            actor=actor,
            action="blocklist_expire",
            object_type="blocklist_entry",
            object_id=str(entry.pk),
            reason=reason,
            before=before,
            after={"expires_at": now},
            remote_addr=remote_addr,
        )
    return True


# --- settings --------------------------------------------------------------------------------------------
def risk_settings_changed(
    *, actor: User, what: str, before: dict[str, Any], after: dict[str, Any], remote_addr: str | None = None
) -> int:
    """Raise the settings version after a change (call in the saving transaction) and record the staff action.

    Returns the new version; assessments made from now on record it.
    """
    checks.settings_ensure()
    RiskSettings.objects.filter(pk=1).update(version=F("version") + 1)
    version = RiskSettings.objects.values_list("version", flat=True).get(pk=1)
    staff_action_record(
        actor=actor,
        action="risk_settings_change",
        object_type="risk_settings",
        object_id=what,
        before=before,
        after={**after, "version": version},
        remote_addr=remote_addr,
    )
    return version
