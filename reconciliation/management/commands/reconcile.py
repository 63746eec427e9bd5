"""`manage.py reconcile [--since DATE] [--until DATE] [--only PASS] [--fix] [--quiet]`: compare the gateway's records
with ours: the payments of a window, every gateway customer's saved payment methods, then the window's
subscriptions and their invoices, then the window's disputes."""

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateways.base import GatewayError
from reconciliation.models import RunScope
from reconciliation.selectors import run_summary
from reconciliation.services import reconcile


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"Not a date (YYYY-MM-DD): {value!r}") from None


class Command(BaseCommand):
    help = (
        "Reconcile the gateway's payment intents created between --since and --until (whole UTC days, both "
        "included; default yesterday) with ours, every gateway customer's attached cards with our saved "
        "payment methods, then the subscriptions created in the window and their invoices, then the disputes "
        "created in the window. Exits 1 when discrepancies are left open."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", type=_day, help="first UTC day (YYYY-MM-DD); default yesterday")
        parser.add_argument("--until", type=_day, help="last UTC day, included (YYYY-MM-DD); default --since")
        parser.add_argument(
            "--only",
            choices=[
                RunScope.PAYMENTS.value,
                RunScope.PAYMENT_METHODS.value,
                RunScope.SUBSCRIPTIONS.value,
                RunScope.DISPUTES.value,
            ],
            help="run one pass: the window's payments, the customers' saved payment methods, the window's "
            "subscriptions and their invoices, or the window's disputes (default all four)",
        )
        parser.add_argument("--fix", action="store_true", help="apply the safe corrections through the services")
        parser.add_argument("--quiet", action="store_true", help="no progress output")

    def handle(self, *args: Any, **options: Any) -> None:
        yesterday = datetime.now(tz=UTC).date() - timedelta(days=1)
        first: date = options["since"] or options["until"] or yesterday
        last: date = options["until"] or first
        if last < first:
            raise CommandError("--until is before --since.")
        since = datetime(first.year, first.month, first.day, tzinfo=UTC)
        until = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
        bars = None if options["quiet"] else _Bars(self)
        try:
            run = reconcile(
                since=since,
                until=until,
                fix=options["fix"],
                scope=options["only"] or RunScope.ALL,
                progress=bars.show("gateway records") if bars else None,
                methods_progress=bars.show("customers") if bars else None,
                subscriptions_progress=bars.show("subscriptions") if bars else None,
                disputes_progress=bars.show("disputes") if bars else None,
            )
        except GatewayError as exc:
            raise CommandError(f"The gateway could not be listed: {exc.message}") from exc
        finally:
            if bars:
                bars.end()
        self._summary(run)
        still_open = run.discrepancies_found - run.discrepancies_fixed
        if still_open:
            raise CommandError(f"Run {run.pk}: {still_open} discrepancies left open.", returncode=1)
        self.stdout.write(self.style.SUCCESS(f"Run {run.pk}: {run.status}."))

    def _summary(self, run: Any) -> None:
        scope = RunScope(run.scope)
        lines = []  # the run's duration ends the first
        window = f"{run.window_start:%Y-%m-%d %H:%M} … {run.window_end:%Y-%m-%d %H:%M} UTC"
        if scope.covers_payments:
            lines.append(
                f"Run {run.pk} ({run.gateway}) {window}: {run.gateway_records} gateway records, {run.our_records} "
                f"ours, {run.matched} matched"
            )
        if scope.covers_payment_methods:
            lines.append(
                f"Run {run.pk} ({run.gateway}) saved payment methods: {run.customers_compared} customers, "
                f"{run.gateway_payment_methods} at the gateway, {run.our_payment_methods} ours, "
                f"{run.payment_methods_matched} matched"
            )
        if scope.covers_subscriptions:
            lines.append(
                f"Run {run.pk} ({run.gateway}) subscriptions {window}: {run.gateway_subscriptions} at the gateway, "
                f"{run.our_subscriptions} ours, {run.subscriptions_matched} matched; their invoices: "
                f"{run.gateway_invoices} at the gateway, {run.our_invoices} ours, {run.invoices_matched} matched"
            )
        if scope.covers_disputes:
            lines.append(
                f"Run {run.pk} ({run.gateway}) disputes {window}: {run.gateway_disputes} at the gateway, "
                f"{run.our_disputes} ours, {run.disputes_matched} matched"
            )
        lines[0] += f", {run.duration_seconds:.1f} s"
        for line in lines:
            self.stdout.write(line)
        self.stdout.write(f"{'kind':<26}{'found':>8}{'fixed':>8}{'open':>8}")
        for label, found, fixed, still_open in run_summary(run):
            self.stdout.write(f"{label:<26}{found:>8}{fixed:>8}{still_open:>8}")
        self.stdout.write(
            f"{'total':<26}{run.discrepancies_found:>8}{run.discrepancies_fixed:>8}"
            f"{run.discrepancies_found - run.discrepancies_fixed:>8}"
        )


class _Bars:
    """One progress display per pass: a bar redrawn in place on a terminal; otherwise a line every 10 seconds."""

    def __init__(self, command: BaseCommand) -> None:
        self.stdout = command.stdout
        self.is_tty = self.stdout.isatty()
        self.drawn = ""  # the unit of the bar on the current terminal line, if any

    def show(self, unit: str) -> Any:
        last_line = [0.0]

        def show(done: int, expected: int) -> None:
            if self.is_tty:
                if self.drawn and self.drawn != unit:
                    self.stdout.write("")  # the previous pass's bar stays on its line
                self.drawn = unit
                share = min(done / expected, 1.0) if expected else 1.0
                bar = "#" * int(share * 30)
                self.stdout.write(f"\r[{bar:<30}] {done:,} / ~{expected:,} {unit}", ending="")
                self.stdout.flush()
            elif time.monotonic() - last_line[0] >= 10:
                last_line[0] = time.monotonic()
                self.stdout.write(f"{done:,} {unit} compared (of about {expected:,})")

        return show

    def end(self) -> None:
        if self.drawn:
            self.stdout.write("")
            self.drawn = ""
