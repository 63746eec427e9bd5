"""`manage.py simulator_advance_clock --client NAME --seconds N`: move an API client's simulated billing clock."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rest_framework.exceptions import NotFound

from accounts.models import User
from config.api.rendering import iso
from webhooks.test_helpers import MAX_SECONDS, advance_clock


class Command(BaseCommand):
    help = "Simulator only: advance an API client's billing clock, delivering the webhooks that fall due."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--client", required=True, help="The API client's username.")
        parser.add_argument("--seconds", required=True, type=int, help=f"1 to {MAX_SECONDS}.")

    def handle(self, *args: Any, client: str, seconds: int, **options: Any) -> None:
        if not 1 <= seconds <= MAX_SECONDS:
            raise CommandError(f"--seconds must be 1 to {MAX_SECONDS}.")
        user = User.objects.filter(username=client).first()
        if user is None:
            raise CommandError(f"No API client {client!r}.")
        try:
            now = advance_clock(client=user, seconds=seconds)
        except NotFound as exc:
            raise CommandError("The gateway is not the simulator (PAYMENTS_GATEWAY=simulator).") from exc
        self.stdout.write(self.style.SUCCESS(f"Clock of {client} is now {iso(now)}."))
