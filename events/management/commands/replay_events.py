"""`manage.py replay_events [--since …] [--until …] [--type …] [--payment …]`: republish stored events."""

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.timezone import make_aware

from events.relay import events_replay
from events.selectors import events_for_replay


def _moment(value: str | None) -> datetime | None:
    if not value:
        return None
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"{value!r} is not a date or an ISO 8601 datetime")
        moment = datetime(day.year, day.month, day.day)  # noqa: DTZ001 - made aware below
    return moment if moment.tzinfo else make_aware(moment)


class Command(BaseCommand):
    help = "Republish stored events to the payment.events exchange, marked as replays (header replay=true)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", help="created at or after (date or ISO datetime, UTC)")
        parser.add_argument("--until", help="created before (date or ISO datetime, UTC)")
        parser.add_argument("--type", action="append", default=[], dest="types", help="event type (repeatable)")
        parser.add_argument("--payment", help="only this payment's events (pay_…)")

    def handle(self, *args: object, **options: object) -> None:
        events = events_for_replay(
            since=_moment(options["since"]),  # type: ignore[arg-type]
            until=_moment(options["until"]),  # type: ignore[arg-type]
            types=options["types"],  # type: ignore[arg-type]
            subject_id=options["payment"],  # type: ignore[arg-type]
        )
        total = events.count()
        self.stdout.write(f"Replaying {total} event(s)")
        step = max(1, total // 20)

        def progress(done: int) -> None:
            if done % step == 0 or done == total:
                width = 30
                filled = width * done // max(total, 1)
                self.stdout.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", ending="")
                self.stdout.flush()

        count = events_replay(events=events, progress=progress)
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"Replayed {count} event(s)."))
