"""Mirror the gateway's catalog of recurring prices here (upsert by the gateway's price id)."""

import time
from typing import Any

from django.core.management.base import BaseCommand

from subscriptions.services import prices_sync


class Command(BaseCommand):
    help = "Mirror every recurring price of the gateway's catalog (active or not), with a progress display."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--quiet", action="store_true", help="no progress output")

    def handle(self, *args: Any, **options: Any) -> None:
        quiet = options["quiet"]
        is_tty = self.stdout.isatty()
        last_line = [0.0]

        def progress(done: int) -> None:
            if quiet:
                return
            if is_tty:
                self.stdout.write(f"\r[{'#' * min(done // 10 + 1, 30):<30}] {done:,} prices", ending="")
                self.stdout.flush()
            elif time.monotonic() - last_line[0] >= 10:
                last_line[0] = time.monotonic()
                self.stdout.write(f"{done:,} prices synced")

        seen, changed = prices_sync(progress=progress)
        if is_tty and not quiet:
            self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"{seen} prices at the gateway, {changed} new or changed here."))
