"""`manage.py reconcile [--since DATE] [--until DATE] [--fix] [--quiet]`: compare the gateway's records with ours."""

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateways.base import GatewayError
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
        "included; default yesterday) with ours. Exits 1 when discrepancies are left open."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", type=_day, help="first UTC day (YYYY-MM-DD); default yesterday")
        parser.add_argument("--until", type=_day, help="last UTC day, included (YYYY-MM-DD); default --since")
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
        progress = None if options["quiet"] else self._progress()
        try:
            run = reconcile(since=since, until=until, fix=options["fix"], progress=progress)
        except GatewayError as exc:
            raise CommandError(f"The gateway could not be listed: {exc.message}") from exc
        if progress:
            self.stdout.write("")
        self._summary(run)
        still_open = run.discrepancies_found - run.discrepancies_fixed
        if still_open:
            raise CommandError(f"Run {run.pk}: {still_open} discrepancies left open.", returncode=1)
        self.stdout.write(self.style.SUCCESS(f"Run {run.pk}: {run.status}."))

    def _progress(self) -> Any:
        """A bar redrawn in place on a terminal; otherwise a line every 10 seconds."""
        is_tty = self.stdout.isatty()
        last_line = [0.0]

        def show(done: int, expected: int) -> None:
            if is_tty:
                share = min(done / expected, 1.0) if expected else 1.0
                bar = "#" * int(share * 30)
                self.stdout.write(f"\r[{bar:<30}] {done:,} / ~{expected:,} gateway records", ending="")
                self.stdout.flush()
            elif time.monotonic() - last_line[0] >= 10:
                last_line[0] = time.monotonic()
                self.stdout.write(f"{done:,} gateway records compared (of about {expected:,})")

        return show

    def _summary(self, run: Any) -> None:
        self.stdout.write(
            f"Run {run.pk} ({run.gateway}) {run.window_start:%Y-%m-%d %H:%M} … {run.window_end:%Y-%m-%d %H:%M} UTC: "
            f"{run.gateway_records} gateway records, {run.our_records} ours, {run.matched} matched, "
            f"{run.duration_seconds:.1f} s"
        )
        self.stdout.write(f"{'kind':<26}{'found':>8}{'fixed':>8}{'open':>8}")
        for label, found, fixed, still_open in run_summary(run):
            self.stdout.write(f"{label:<26}{found:>8}{fixed:>8}{still_open:>8}")
        self.stdout.write(
            f"{'total':<26}{run.discrepancies_found:>8}{run.discrepancies_fixed:>8}"
            f"{run.discrepancies_found - run.discrepancies_fixed:>8}"
        )
