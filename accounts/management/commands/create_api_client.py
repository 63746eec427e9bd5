"""`manage.py create_api_client NAME --role storefront|finance [--password PW]`."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import ApiRole
from accounts.services import api_client_create_or_update


class Command(BaseCommand):
    help = "Create an API client (idempotent). Prints a generated password when none is given."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--role", required=True, choices=ApiRole.values)
        parser.add_argument("--password", default=None, help="Password to set (generated for new clients).")

    def handle(self, *args: object, name: str, role: str, password: str | None, **options: object) -> None:
        try:
            result = api_client_create_or_update(name=name, role=role, password=password)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if result.created:
            self.stdout.write(self.style.SUCCESS(f"Created {role} API client {name!r}."))
        elif result.role_changed:
            self.stdout.write(self.style.WARNING(f"API client {name!r} exists; role changed to {role}."))
        else:
            self.stdout.write(f"API client {name!r} already exists with role {role}.")
        if result.password and not password:
            self.stdout.write(f"password: {result.password}")
        elif password:
            self.stdout.write("Password set.")
        else:
            self.stdout.write("Password unchanged (pass --password to set one).")
