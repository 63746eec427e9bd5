"""`manage.py reconcile`: window, summary table, exit codes, and the daily beat task."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from payments.models import Payment
from payments.states import PaymentStatus as S
from reconciliation.models import ReconciliationRun, RunStatus
from reconciliation.tasks import reconcile_daily

pytestmark = pytest.mark.django_db

TODAY = datetime.now(tz=UTC).date().isoformat()


def test_nothing_to_report_exits_zero_with_a_summary(pay):
    pay()
    out = StringIO()

    call_command("reconcile", "--since", TODAY, "--until", TODAY, stdout=out)

    run = ReconciliationRun.objects.get()
    midnight = datetime.fromisoformat(TODAY).replace(tzinfo=UTC)
    assert (run.window_start, run.window_end) == (midnight, midnight + timedelta(days=1))
    assert run.status == RunStatus.CLEAN
    output = out.getvalue()
    assert "1 gateway records compared (of about 1)" in output  # not a terminal: plain progress lines
    assert "1 gateway records, 1 ours, 1 matched" in output
    assert f"{'total':<26}{0:>8}{0:>8}{0:>8}" in output
    assert f"Run {run.pk}: clean." in output


def test_open_discrepancies_exit_one(pay):
    payment = pay()
    Payment.objects.filter(pk=payment.pk).update(amount=2100)
    out = StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("reconcile", "--since", TODAY, "--quiet", stdout=out)

    assert raised.value.returncode == 1
    run = ReconciliationRun.objects.get()
    assert str(raised.value) == f"Run {run.pk}: 1 discrepancies left open."
    assert run.status == RunStatus.UNRESOLVED
    output = out.getvalue()
    assert "gateway records compared" not in output  # --quiet
    assert f"{'Amount differs':<26}{1:>8}{0:>8}{1:>8}" in output


def test_fix_that_resolves_everything_exits_zero(pay):
    payment = pay()
    Payment.objects.filter(pk=payment.pk).update(status=S.PROCESSING, amount_received=0)
    out = StringIO()

    call_command("reconcile", "--since", TODAY, "--fix", "--quiet", stdout=out)

    assert Payment.objects.get(pk=payment.pk).status == S.SUCCEEDED
    run = ReconciliationRun.objects.get()
    assert (run.discrepancies_found, run.discrepancies_fixed, run.status) == (1, 1, RunStatus.CLEAN)
    assert f"{'Status differs':<26}{1:>8}{1:>8}{0:>8}" in out.getvalue()


def test_the_same_difference_without_fix_exits_one(pay):
    payment = pay()
    Payment.objects.filter(pk=payment.pk).update(status=S.PROCESSING, amount_received=0)

    with pytest.raises(CommandError) as raised:
        call_command("reconcile", "--since", TODAY, "--quiet", stdout=StringIO())

    assert raised.value.returncode == 1
    assert Payment.objects.get(pk=payment.pk).status == S.PROCESSING


def test_default_window_is_yesterday_utc(pay):
    pay()  # made today: outside yesterday's window

    call_command("reconcile", "--quiet", stdout=StringIO())

    run = ReconciliationRun.objects.get()
    today = datetime.now(tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert (run.window_start, run.window_end) == (today - timedelta(days=1), today)
    assert (run.gateway_records, run.our_records, run.status) == (0, 0, RunStatus.CLEAN)


def test_a_bad_date_is_refused():
    with pytest.raises(CommandError, match="Not a date"):
        call_command("reconcile", "--since", "yesterday", stdout=StringIO())

    assert ReconciliationRun.objects.count() == 0


def test_daily_task_reconciles_yesterday(pay):
    pay()

    status = reconcile_daily.apply().get()

    run = ReconciliationRun.objects.get()
    today = datetime.now(tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert status == "clean"
    assert (run.window_start, run.window_end, run.fix) == (today - timedelta(days=1), today, False)
