"""Task helpers: enqueue by registered name, after commit; an unknown name is an error, not a silent drop."""

import time

import pytest
from celery.exceptions import NotRegistered

from config.tasks import enqueue, enqueue_on_commit, run_with_retries
from payments.tasks import settle_payment


def test_an_unknown_task_name_is_refused():
    with pytest.raises(NotRegistered):
        enqueue("payments.tasks.no_such_task", payment_id=1)


@pytest.mark.django_db
def test_enqueue_on_commit_sends_only_once_the_transaction_commits(monkeypatch, django_capture_on_commit_callbacks):
    sent: list[dict] = []
    monkeypatch.setattr(settle_payment, "delay", lambda **kwargs: sent.append(kwargs))

    with django_capture_on_commit_callbacks() as callbacks:
        enqueue_on_commit("payments.tasks.settle_payment", payment_id=7)
        assert sent == []  # nothing leaves the process inside the transaction
    for callback in callbacks:
        callback()

    assert sent == [{"payment_id": 7}]


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


def test_threads_enqueueing_at_once_all_find_their_task(monkeypatch):
    # given a process whose tasks are not registered yet, as in a fresh web process (discovery is slow)
    from config import tasks as helpers
    from config.celery import app
    from tests.helpers import run_in_threads

    sent: list[int] = []
    monkeypatch.setattr(settle_payment, "delay", lambda **kwargs: sent.append(kwargs["payment_id"]))
    registered = app.tasks.pop("payments.tasks.settle_payment")
    real_discover = app.loader.import_default_modules

    calls = []

    def slow_discovery():
        # Like Celery's: the first call imports the tasks modules (slowly); a call meanwhile finds them
        # being imported and returns at once, before the task is registered.
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.2)
            app.tasks.register(registered)
            return real_discover()
        return None

    monkeypatch.setattr(app.loader, "import_default_modules", slow_discovery)

    # when eight threads enqueue the task at the same moment
    run_in_threads([lambda n=n: helpers.enqueue("payments.tasks.settle_payment", payment_id=n) for n in range(8)])

    # then every one of them sent it
    assert sorted(sent) == list(range(8))
