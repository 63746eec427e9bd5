"""`manage.py staff_totp_enroll USERNAME [--backup-codes N]`: a new authenticator for a staff member, shown once."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services import staff_totp_enroll


class Command(BaseCommand):
    help = (
        "Enrol a new TOTP authenticator for a staff user (replacing any earlier one) and print its secret and "
        "otpauth:// URL once; optionally one-time backup codes (replacing earlier ones)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--backup-codes", type=int, default=0, help="How many one-time backup codes (0: none).")

    def handle(self, *args: object, username: str, backup_codes: int, **options: object) -> None:
        if not 0 <= backup_codes <= 20:
            raise CommandError("--backup-codes must be between 0 and 20")
        try:
            enrolment = staff_totp_enroll(username=username, backup_codes=backup_codes)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Enrolled an authenticator for {username!r}; hand these over once:"))
        self.stdout.write(f"secret: {enrolment.secret}")
        self.stdout.write(f"url: {enrolment.url}")
        for code in enrolment.backup_codes:
            self.stdout.write(f"backup code: {code}")
