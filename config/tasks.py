"""Task helpers shared by every app: the project's task class, one retry loop with backoff, and enqueueing.

Services enqueue their own app's tasks by registered name (`payments.tasks.settle_payment`) instead of
importing them: the tasks module imports the services, so the import between them goes one way.

Two faults every task and every request must survive:

- **The database goes away** (a restart, a failover, a backend terminated): every task is a `Task`
  (`config/celery.py` makes it the app's task class), which retries `django.db.OperationalError` and
  `InterfaceError` with exponential backoff and jitter (`TASKS_DB_*`), on a fresh connection.
- **The broker stops answering**: `enqueue`/`publish` make one attempt, bounded by the broker's socket
  timeouts (`CELERY_BROKER_TRANSPORT_OPTIONS`), never retried; a send that fails is logged and skipped,
  and after a slow failure this process skips sends at once for `TASKS_PUBLISH_PAUSE_SECONDS`. Nothing
  is lost: the work is in the database and a periodic sweep sends it again (the outbox relay every 30 s,
  stuck payments and refunds every minute, webhook events left `received` by the recovery task).
"""

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import celery
import redis
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, InterfaceError, OperationalError, connections, transaction
from kombu.exceptions import OperationalError as BrokerOperationalError

from config.celery import app

T = TypeVar("T")
logger = logging.getLogger(__name__)
_discovery = threading.Lock()

DATABASE_ERRORS = (OperationalError, InterfaceError)
# What a send raises when the broker is down, refuses, or says nothing within its socket timeout.
BROKER_ERRORS = (BrokerOperationalError, redis.RedisError, OSError)
# A failed send that took this long waited on a silent broker: pause sending rather than make every request wait.
_SLOW_FAILURE_SECONDS = 0.25
_paused_until: dict[str, float] = {}  # per broker URL: until when this process sends nothing there
_sent_until: dict[str, float] = {}  # per guard key: until when the task this process sent surely waits
# The callbacks `at_request_end` holds for the web request this context serves (None: not serving one).
_request_end: ContextVar[dict[Callable[[], None], None] | None] = ContextVar("request_end", default=None)


def at_request_end(callback: Callable[[], None]) -> None:
    """Call `callback` when the web request being served ends, once however often asked; outside one, now.

    For a nudge after a commit (`transaction.on_commit(lambda: at_request_end(trigger))`) that a request
    making several commits needs only once: create + confirm commits twice, and its events need one relay.
    """
    pending = _request_end.get()
    if pending is None:
        callback()
    else:
        pending[callback] = None


@contextmanager
def request_end_callbacks() -> Iterator[None]:
    """Serve a request in the block: `at_request_end` callbacks wait for its end, and run then, in order.

    Each error is logged, as `transaction.on_commit(…, robust=True)` logs it: the request's commits stand.
    """
    pending: dict[Callable[[], None], None] = {}
    token = _request_end.set(pending)
    try:
        yield
    finally:
        _request_end.reset(token)
        for callback in pending:
            try:
                callback()
            except Exception:  # noqa: BLE001 - a nudge after committed work: logged, the response goes out
                logger.exception("A callback at the request's end failed", extra={"callback": repr(callback)})


def backoff_seconds(retries: int, *, base: float, cap: float) -> float:
    """Exponential backoff with jitter (between half and all of the doubled delay), capped."""
    ceiling = min(cap, base * 2**retries)
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography


def close_database_connections() -> None:
    """Close this thread's database connections, so that the next query opens a new one (not the broken one)."""
    for connection in connections.all(initialized_only=True):
        with contextlib.suppress(DatabaseError):
            connection.close()


class Task(celery.Task):
    """The project's task class: a lost database connection is retried with backoff and jitter, on a new one.

    The retry counts are the task's (`request.retries`), shared with any retries the task makes itself.
    Past `TASKS_DB_MAX_RETRIES` the error is raised (the task fails, logged; the sweeps still see the row).
    Run inline (eager, in tests and local runs) the error is raised at once: there is no broker to retry with.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except DATABASE_ERRORS as exc:
            request = self.request
            if request.called_directly or request.is_eager:
                raise
            close_database_connections()
            retries = request.retries
            if retries >= settings.TASKS_DB_MAX_RETRIES:
                logger.error("Task failed: database unavailable, retries exhausted", extra={"task": self.name})
                raise
            countdown = backoff_seconds(
                retries, base=settings.TASKS_DB_RETRY_BASE_SECONDS, cap=settings.TASKS_DB_RETRY_MAX_SECONDS
            )
            logger.warning(
                "Database unavailable; task retried",
                extra={
                    "task": self.name,
                    "retries": retries,
                    "countdown": round(countdown, 2),
                    "error": type(exc).__name__,
                },
            )
            raise self.retry(exc=exc, countdown=countdown, max_retries=settings.TASKS_DB_MAX_RETRIES) from exc


def run_with_retries(
    task: celery.Task,
    work: Callable[[], T],
    *,
    retry_on: tuple[type[Exception], ...],
    max_retries: int,
    base_seconds: float,
    max_seconds: float,
    on_exhausted: Callable[[Exception], T],
) -> T:
    """Run `work`; on a `retry_on` error retry the task with backoff and jitter, up to `max_retries`.

    When the retries have run out, `on_exhausted(error)` decides what is left (flag the row for staff,
    log): its answer is the task's result, so the exhaustion is visible rather than a silent drop.
    """
    try:
        return work()
    except retry_on as exc:
        retries = task.request.retries
        if retries >= max_retries:
            return on_exhausted(exc)
        raise task.retry(exc=exc, countdown=backoff_seconds(retries, base=base_seconds, cap=max_seconds)) from exc


def registered(task_name: str) -> celery.Task:
    """The task registered under `task_name`.

    :raises celery.exceptions.NotRegistered: no app defines a task of that name.
    """
    if task_name not in app.tasks:
        # A web process has not imported the apps' tasks modules yet: discover them as a worker does at start,
        # once, while other threads that want a task wait (a half-done discovery would miss it).
        with _discovery:
            if task_name not in app.tasks:
                app.loader.import_default_modules()
    return app.tasks[task_name]


def publish(
    task: celery.Task, *, kwargs: dict[str, Any] | None = None, countdown: float | None = None, retries: int = 0
) -> bool:
    """Send `task` once, without retrying: True when the broker took it, False when it was skipped (logged).

    Bounded by the broker's connect and socket timeouts; while a pause after a slow failure lasts, skipped
    at once. Inline (eager) runs are not sends: the task runs and its errors propagate. `retries`: the
    task starts as that retry (`request.retries`), for work already tried elsewhere.
    """
    options: dict[str, Any] = {"retries": retries} if retries else {}
    if app.conf.task_always_eager:
        task.apply_async(kwargs=kwargs, countdown=countdown, **options)
        return True
    broker = str(app.conf.broker_write_url or app.conf.broker_url)
    if time.monotonic() < _paused_until.get(broker, 0.0):
        logger.warning("Task not sent: the broker failed just now; a sweep sends it later", extra={"task": task.name})
        return False
    started = time.monotonic()
    try:
        task.apply_async(kwargs=kwargs, countdown=countdown, retry=False, **options)
    except BROKER_ERRORS as exc:
        waited = time.monotonic() - started
        if waited >= _SLOW_FAILURE_SECONDS:
            _paused_until[broker] = time.monotonic() + settings.TASKS_PUBLISH_PAUSE_SECONDS
        logger.warning(
            "Task not sent: the broker is unavailable; a sweep sends it later",
            extra={"task": task.name, "error": type(exc).__name__, "waited_seconds": round(waited, 3)},
        )
        return False
    return True


def publish_debounced(task: celery.Task, *, guard_key: str, delay_ms: int, guard_seconds: int = 5) -> bool:
    """Send `task` `delay_ms` from now unless one sent by an earlier call is still to start; True when sent.

    The first call sets `guard_key` in the cache (`cache.add`); while it stands nothing more is sent. The task
    must delete the guard before it reads its work, so a call after that sends again. `guard_seconds` bounds
    how long a lost send holds others back. For the first half of `delay_ms` after this process sent the
    task, calls return at once without asking the cache (that task has not started: it sees their work).
    Without the cache (an outage), it sends as if there were no guard; `delay_ms <= 0` sends at once,
    unguarded. One send, as `publish`: a commit never waits on a silent broker.
    """
    # The task this process sent last cannot have started before its countdown: a call in the first half of
    # it needs no guard (that task will read this call's work) and costs no round trip to the cache.
    local = delay_ms > 0 and not app.conf.task_always_eager  # an inline run has started already
    sending = time.monotonic()
    if local and sending < _sent_until.get(guard_key, 0.0):
        return False
    try:
        first = delay_ms <= 0 or cache.add(guard_key, 1, guard_seconds)
    except Exception:  # noqa: BLE001 - the cache is only an optimisation: send as if there were none
        logger.warning("Task guard unavailable; sending without it", extra={"task": task.name}, exc_info=True)
        first = True
    sent = bool(first) and publish(task, countdown=delay_ms / 1000 if delay_ms > 0 else None)
    if sent and local:  # half the countdown: room for the worker's clock to run ahead of this one
        _sent_until[guard_key] = sending + delay_ms / 2000
    return sent


def enqueue(task_name: str, **kwargs: Any) -> bool:
    """Send a registered task now (call outside a transaction, or use `enqueue_on_commit`); see `publish`.

    :raises celery.exceptions.NotRegistered: no app defines a task of that name.
    """
    return publish(registered(task_name), kwargs=kwargs)


def enqueue_on_commit(task_name: str, **kwargs: Any) -> None:
    """Send a registered task once the current transaction commits (at once when there is none)."""
    transaction.on_commit(lambda: enqueue(task_name, **kwargs))
