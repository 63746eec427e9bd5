"""`manage.py process_webhooks [--failed] [--ids evt_… …] [--type T]`: (re)process stored Stripe events."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webhooks import selectors, services
from webhooks.models import WebhookStatus

OUTCOMES = (WebhookStatus.PROCESSED, WebhookStatus.IGNORED, WebhookStatus.FAILED, "skipped")


class Command(BaseCommand):
    help = (
        "Process stored Stripe events: by default those never processed (received); --failed, those that failed; "
        "--ids, the given Stripe event ids whatever their status (processed ones are skipped). Exits non-zero "
        "when an event fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--failed", action="store_true", help="Reprocess failed events.")
        parser.add_argument("--ids", nargs="+", default=[], metavar="EVENT_ID", help="Stripe event ids (evt_...).")
        parser.add_argument("--type", default="", dest="event_type", help="Only events of this type.")

    def handle(self, *args: Any, failed: bool, ids: list[str], event_type: str, **options: Any) -> None:
        rows = list(
            selectors.webhook_events_to_process(failed=failed, stripe_ids=ids, event_type=event_type).values_list(
                "pk", "stripe_id", "type"
            )
        )
        missing = sorted(set(ids) - {stripe_id for _, stripe_id, _ in rows})
        for stripe_id in missing:
            self.stderr.write(f"{stripe_id}: not stored")
        total = len(rows)
        self.stdout.write(f"{total} event(s) to process")
        counts = dict.fromkeys(OUTCOMES, 0)
        for index, (pk, stripe_id, type_) in enumerate(rows, start=1):
            outcome = services.webhook_event_reprocess(webhook_event_id=pk)
            counts[outcome] += 1
            self.stdout.write(f"[{index}/{total}] {stripe_id} {type_}: {outcome}")
        summary = ", ".join(f"{name}: {count}" for name, count in counts.items())
        self.stdout.write(f"Done. {summary}" + (f", not stored: {len(missing)}" if missing else ""))
        if counts[WebhookStatus.FAILED]:
            raise CommandError(f"{counts[WebhookStatus.FAILED]} event(s) failed; see last_error in the admin.")
