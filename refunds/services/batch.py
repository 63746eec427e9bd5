"""Submitting new refunds in batches: one worker run for the refunds created meanwhile, their gateway calls at once.

Creating a refund sends no task of its own. After its commit it asks, debounced, for one run of
`refunds.tasks.submit_new_refunds` (`refunds_trigger_submission`): the first commit sets a guard in the
cache and schedules the run `REFUNDS_SUBMIT_DELAY_MS` later; commits while the guard stands send nothing,
since that run will see their refunds. The run clears the guard before it reads, so a commit that finds
no guard always schedules a run that starts after it.

A run claims refunds never tried (`pending`, no attempt yet, no gateway reference) in one statement,
`FOR UPDATE SKIP LOCKED` so runs on several workers never take the same refund, counting their first
attempt; makes their gateway calls at once (up to `REFUNDS_SUBMIT_CONCURRENCY` threads, each call with
the refund's key `re_X:create`, so a call made twice refunds once); and applies the answers in one
transaction (`apply_answers`: their payments locked in one statement, in id order, then the refunds), as
`refund_submit` applies one. If that transaction fails, nothing of it is kept and each answer is applied in
a transaction of its own. A retryable failure (or the database failing while its own answer is applied)
hands that refund to the `submit_refund` task as its first retry, with backoff, while the others go on:
a refund gets at most `REFUNDS_SUBMIT_MAX_RETRIES` retries after its first attempt, as when it is
submitted alone. The batch's transaction holds its payments' locks while it applies the answers (about a
millisecond per refund): a refund requested meanwhile on one of them waits that long. Nothing waits long on
a lost trigger: the next run claims what is left, and the stuck-refund sweep resubmits a refund left pending.
"""

import contextvars
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import cache

from django.conf import settings
from django.core.cache import cache as django_cache
from django.core.exceptions import ObjectDoesNotExist
from django.db import DatabaseError, connection
from redis.exceptions import RedisError

from config.tasks import backoff_seconds, publish, publish_debounced, registered
from gateways.base import Declined, Permanent, RefundResult, Retryable
from payments.states import InvalidTransition
from refunds.models import Refund
from refunds.services.submit import (
    SUBMIT_TASK,
    Submission,
    apply_answer,
    apply_answers,
    gateway_answer,
    note_retryable,
    sql_column,
    submission_columns,
    submission_from_row,
)
from refunds.states import InvalidRefundTransition, RefundStatus

logger = logging.getLogger(__name__)

NEW_REFUNDS_TASK = "refunds.tasks.submit_new_refunds"
GUARD_KEY = "refunds:submission-scheduled"
# How long the guard stands if the scheduled run is lost (a broker hiccup): then the next commit schedules again.
GUARD_SECONDS = 5
# Batches one run submits at most before it hands the rest to a run of its own (so a run stays short).
MAX_BATCHES = 20


def refunds_trigger_submission() -> None:
    """After a commit that created refunds: schedule one run of `submit_new_refunds`, debounced (see above)."""
    publish_debounced(
        registered(NEW_REFUNDS_TASK),
        guard_key=GUARD_KEY,
        delay_ms=settings.REFUNDS_SUBMIT_DELAY_MS,
        guard_seconds=GUARD_SECONDS,
    )


def refunds_submit_new(*, batch_size: int | None = None) -> int:
    """Submit the refunds never tried, batch by batch, and apply the gateway's answers; the number submitted.

    Clears the trigger's guard first: a refund committed after that schedules a run of its own.
    """
    try:
        django_cache.delete(GUARD_KEY)
    except (RedisError, OSError):  # the cache unreachable: a guard left standing expires by itself
        logger.warning("Refund submission guard not cleared", exc_info=True)
    size = batch_size or settings.REFUNDS_SUBMIT_BATCH_SIZE
    submitted = 0
    for _ in range(MAX_BATCHES):
        claimed = _claim_new(size)
        _submit(claimed)
        submitted += len(claimed)
        if len(claimed) < size:
            return submitted
    refunds_trigger_submission()  # more are waiting: another run takes them
    return submitted


def _claim_new(limit: int) -> list[Submission]:
    """Count the first attempt of up to `limit` refunds never tried, and read what their calls need (one statement)."""
    with connection.cursor() as cursor:
        cursor.execute(_claim_sql(connection.vendor), [RefundStatus.PENDING, limit])
        rows = cursor.fetchall()
    return sorted((submission_from_row(row) for row in rows), key=lambda submission: submission.refund_id)


@cache
def _claim_sql(vendor: str) -> str:
    """`UPDATE refunds SET attempts = 1 WHERE id IN (the oldest never tried, locked, skipping locked) RETURNING …`."""
    refunds = connection.ops.quote_name(Refund._meta.db_table)
    refund_id, attempts = sql_column(Refund, "id"), sql_column(Refund, "attempts")
    lock = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    never_tried = (
        f"SELECT {refund_id} FROM {refunds} WHERE {sql_column(Refund, 'status')} = %s AND {attempts} = 0 "  # noqa: S608 - names
        f"AND {sql_column(Refund, 'gateway_reference')} IS NULL ORDER BY {refund_id} LIMIT %s{lock}"
    )
    return (
        f"UPDATE {refunds} SET {attempts} = {attempts} + 1 "  # noqa: S608 - names from the models
        f"WHERE {refund_id} IN ({never_tried}) AND {attempts} = 0 RETURNING {submission_columns(vendor)}"
    )


def _submit(claimed: list[Submission]) -> None:
    """Make the claimed refunds' gateway calls at once, then apply their answers together (one transaction).

    A call that fails in a way no gateway error describes (a bug) is raised once the other answers are
    applied: the run fails, logged, and that refund waits, pending, for the stuck sweep (same key).
    """
    if not claimed:
        return
    threads = min(settings.REFUNDS_SUBMIT_CONCURRENCY, len(claimed))
    # Each call runs in a copy of this context (the trace, the log context); the calls touch no database.
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="refund-submit") as pool:
        calls = [pool.submit(contextvars.copy_context().run, gateway_answer, submission) for submission in claimed]
        failure: BaseException | None = None
        answered: list[tuple[Submission, RefundResult | Declined | Permanent]] = []
        for submission, call in zip(claimed, calls, strict=True):
            if (error := call.exception()) is not None:
                failure = failure or error
                continue
            answer = call.result()
            if isinstance(answer, Retryable):
                note_retryable(submission, answer)
                _retry_alone(submission)
            else:
                answered.append((submission, answer))
    _apply(answered)
    if failure is not None:
        raise failure


def _apply(answered: list[tuple[Submission, RefundResult | Declined | Permanent]]) -> None:
    """Apply the answers in one transaction (`apply_answers`); if that fails, each on its own (`_settle`)."""
    if not answered:
        return
    try:
        apply_answers(answered)
    except (DatabaseError, ObjectDoesNotExist, InvalidTransition, InvalidRefundTransition):
        # Nothing of the batch was applied: each answer alone now, so one refund's trouble holds back no other
        # (a state the machine refuses is raised again, at that refund, once the ones before it are applied).
        logger.warning("Refund answers not applied together; applying them one by one", exc_info=True)
        for submission, answer in answered:
            _settle(submission, answer)


def _settle(submission: Submission, answer: RefundResult | Declined | Permanent) -> None:
    """Apply one refund's answer; the database failing meanwhile sends the refund to its own retry task."""
    try:
        apply_answer(submission, answer)
    except DatabaseError:
        # The database gone meanwhile: the other refunds go on, and this one is sent again alone, with the same key.
        logger.exception("Refund answer not applied; retried on its own", extra={"refund": submission.public_id})
        _retry_alone(submission)


def _retry_alone(submission: Submission) -> None:
    """Send the refund's `submit_refund` as its first retry (`retries=1`), with backoff: the same bound as alone.

    A send lost to a broker outage leaves the refund pending for the stuck-refund sweep.
    """
    countdown = backoff_seconds(0, base=settings.REFUNDS_RETRY_BASE_SECONDS, cap=settings.REFUNDS_RETRY_MAX_SECONDS)
    publish(registered(SUBMIT_TASK), kwargs={"refund_id": submission.refund_id}, countdown=countdown, retries=1)
