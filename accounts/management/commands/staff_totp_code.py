"""`manage.py staff_totp_code USERNAME`: a staff member's current TOTP code, for demos and tests (DEBUG only)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from accounts.signin import staff_totp_code


class Command(BaseCommand):
    help = "Print the current TOTP code of a staff user's authenticator (DEBUG only: demos and tests)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: object, username: str, **options: object) -> None:
        if not settings.DEBUG:
            raise CommandError("staff_totp_code runs with DEBUG on only: a code is the second factor itself.")
        user = User.objects.filter(username=username, is_staff=True).first()
        if user is None:
            raise CommandError(f"no staff user named {username!r}")
        try:
            self.stdout.write(staff_totp_code(user=user))
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
