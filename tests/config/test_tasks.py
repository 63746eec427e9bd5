"""Task helpers: enqueue by registered name, after commit; an unknown name is an error, not a silent drop."""

import threading

import pytest
from celery.exceptions import NotRegistered
from django.db import connections

from config import tasks as helpers
from config.celery import app
from config.tasks import at_request_end, enqueue, enqueue_on_commit, request_end_callbacks, run_with_retries

SETTLE = "payments.tasks.settle_payment"


def test_an_unknown_task_name_is_refused():
    with pytest.raises(NotRegistered):
        enqueue("payments.tasks.no_such_task", payment_id=1)


@pytest.mark.django_db
def test_enqueue_on_commit_sends_only_once_the_transaction_commits(broker_queue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        enqueue_on_commit(SETTLE, payment_id=7)
        assert broker_queue("gateway") == []  # nothing leaves the process inside the transaction
    for callback in callbacks:
        callback()

    assert [(task.name, task.kwargs) for task in broker_queue("gateway")] == [(SETTLE, {"payment_id": 7})]


class _Request:
    def __init__(self, retries: int) -> None:
        self.retries = retries


class _Task:
    """What `run_with_retries` reads of a bound Celery task: its retry count, and `retry`."""

    def __init__(self, retries: int) -> None:
        self.request = _Request(retries)
        self.retried_with: float | None = None

    def retry(self, *, exc: Exception, countdown: float) -> Exception:
        self.retried_with = countdown
        return RuntimeError("retry")


def _flaky() -> str:
    raise TimeoutError("no answer")


def test_a_retryable_error_is_retried_with_a_bounded_backoff():
    task = _Task(retries=3)

    with pytest.raises(RuntimeError, match="retry"):
        run_with_retries(
            task,  # type: ignore[arg-type]
            _flaky,
            retry_on=(TimeoutError,),
            max_retries=5,
            base_seconds=2,
            max_seconds=10,
            on_exhausted=lambda exc: "flagged",
        )

    assert task.retried_with is not None
    assert 5 <= task.retried_with <= 10  # 2 * 2**3 = 16, capped at 10, jittered down to no less than half


def test_past_the_bound_the_exhaustion_handler_answers():
    task = _Task(retries=5)

    result = run_with_retries(
        task,  # type: ignore[arg-type]
        _flaky,
        retry_on=(TimeoutError,),
        max_retries=5,
        base_seconds=2,
        max_seconds=10,
        on_exhausted=lambda exc: f"flagged: {exc}",
    )

    assert (result, task.retried_with) == ("flagged: no answer", None)


def test_other_errors_are_not_retried():
    task = _Task(retries=0)

    def broken() -> str:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        run_with_retries(
            task,  # type: ignore[arg-type]
            broken,
            retry_on=(TimeoutError,),
            max_retries=5,
            base_seconds=2,
            max_seconds=10,
            on_exhausted=lambda exc: "flagged",
        )
    assert task.retried_with is None


def test_a_thread_enqueueing_while_another_discovers_the_tasks_waits_for_it(monkeypatch, broker_queue):
    # given a process whose tasks are not registered yet, as in a fresh web process, and a discovery that
    # returns at once to a second caller while the first is still importing (as Celery's does)
    registered = app.tasks.pop(SETTLE)
    discovering, finish_discovery = threading.Event(), threading.Event()
    calls: list[str] = []
    real_discover = app.loader.import_default_modules

    def discovery() -> None:
        calls.append(threading.current_thread().name)
        if len(calls) > 1:
            return  # the modules are being imported by the first caller: nothing to do here
        discovering.set()
        assert finish_discovery.wait(10)
        app.tasks.register(registered)
        real_discover()

    monkeypatch.setattr(app.loader, "import_default_modules", discovery)
    errors: list[BaseException] = []

    def send(payment_id: int) -> None:
        try:
            helpers.enqueue(SETTLE, payment_id=payment_id)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    first = threading.Thread(target=send, args=(1,), name="first")
    second = threading.Thread(target=send, args=(2,), name="second")
    try:
        # when a second thread enqueues while the first is discovering
        first.start()
        assert discovering.wait(10)
        second.start()
        second.join(timeout=1)  # it must still be waiting for the discovery, not done (or failed) without it
        second_waited = second.is_alive()
        finish_discovery.set()
        first.join(10)
        second.join(10)
    finally:
        finish_discovery.set()
        if SETTLE not in app.tasks:
            app.tasks.register(registered)

    # then the second waited for the discovery, and both tasks reached the broker
    assert (errors, second_waited, calls) == ([], True, ["first"])
    assert sorted(task.kwargs["payment_id"] for task in broker_queue("gateway")) == [1, 2]


def test_callbacks_asked_for_at_a_requests_end_run_then_once_each_in_order():
    ran: list[str] = []

    def first() -> None:
        ran.append("first")

    def second() -> None:
        ran.append("second")

    with request_end_callbacks():
        at_request_end(first)
        at_request_end(second)
        at_request_end(first)
        assert ran == []  # the request is still being served

    assert ran == ["first", "second"]


def test_a_failing_callback_at_a_requests_end_is_logged_and_the_others_still_run(caplog):
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("the broker went away")

    with request_end_callbacks():
        at_request_end(broken)
        at_request_end(lambda: ran.append("after"))

    assert ran == ["after"]
    assert "A callback at the request's end failed" in caplog.text


def test_outside_a_request_a_callback_runs_at_once():
    ran: list[str] = []

    at_request_end(lambda: ran.append("now"))

    assert ran == ["now"]
