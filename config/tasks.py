"""Task helpers shared by every app: one retry loop with backoff, and enqueueing a task by name.

Services enqueue their own app's tasks by registered name (`payments.tasks.settle_payment`) instead of
importing them: the tasks module imports the services, so the import between them goes one way.
"""

import random
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from celery import Task
from django.db import transaction

from config.celery import app

T = TypeVar("T")
_discovery = threading.Lock()


def backoff_seconds(retries: int, *, base: float, cap: float) -> float:
    """Exponential backoff with jitter (between half and all of the doubled delay), capped."""
    ceiling = min(cap, base * 2**retries)
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography


def run_with_retries(
    task: Task,
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


def enqueue(task_name: str, **kwargs: Any) -> None:
    """Send a registered task now (call outside a transaction, or use `enqueue_on_commit`).

    :raises celery.exceptions.NotRegistered: no app defines a task of that name.
    """
    if task_name not in app.tasks:
        # A web process has not imported the apps' tasks modules yet: discover them as a worker does at start,
        # once, while other threads that want a task wait (a half-done discovery would miss it).
        with _discovery:
            if task_name not in app.tasks:
                app.loader.import_default_modules()
    app.tasks[task_name].delay(**kwargs)


def enqueue_on_commit(task_name: str, **kwargs: Any) -> None:
    """Send a registered task once the current transaction commits (at once when there is none)."""
    transaction.on_commit(lambda: enqueue(task_name, **kwargs))
