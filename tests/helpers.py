"""Helpers shared by tests: run requests from real threads, hold a row lock elsewhere, wait on a condition."""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from django.db import connections, transaction
from django.db.models import Model


def run_in_threads(functions: list[Callable[[], Any]], *, timeout: float = 60) -> list[Any]:
    """Start every function at the same moment on its own thread; return results (or exceptions) in order."""
    barrier = threading.Barrier(len(functions))
    results: list[Any] = [None] * len(functions)

    def runner(index: int, function: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[index] = function()
        except Exception as exc:  # noqa: BLE001 - the test inspects what each thread got
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=runner, args=(i, f)) for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a thread did not finish in time"
    return results


@contextmanager
def row_locked_elsewhere(row: Model) -> Iterator[None]:
    """Another connection holds `row`'s lock (`SELECT … FOR UPDATE`, as a worker mid-transaction) for the block."""
    locked, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            with transaction.atomic():
                type(row)._default_manager.select_for_update().get(pk=row.pk)
                locked.set()
                release.wait(30)
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            errors.append(exc)
            locked.set()
        finally:
            connections.close_all()

    thread = threading.Thread(target=hold)
    thread.start()
    assert locked.wait(10)
    assert not errors, errors
    try:
        yield
    finally:
        release.set()
        thread.join(10)


def wait_for(condition: Callable[[], Any], *, timeout: float = 20, interval: float = 0.05) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def wait_until_due(eta: str | None, *, timeout: float = 20) -> None:
    """Wait until a sent task's ETA (its message's `eta` header) has come: when a worker would start it."""
    assert eta is not None, "the task was sent without a countdown"
    due = datetime.fromisoformat(eta)
    wait_for(lambda: datetime.now(tz=UTC) >= due, timeout=timeout, interval=0.005)
