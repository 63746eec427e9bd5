"""`manage.py customer_erase --client NAME --customer-id ID --reason "…"`: erase a customer's personal data."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from rest_framework.exceptions import NotFound

from config.api.errors import ApplicationError
from payments.models import ChangeSource
from privacy.management.commands._common import add_customer_arguments, operator, storefront
from privacy.services import customer_erase


class Command(BaseCommand):
    help = (
        "Erase a customer: the gateway's customer deleted, saved methods detached, subscriptions canceled, personal "
        "data removed from every row (amounts, statuses and ids stay). Audited."
    )

    def add_arguments(self, parser: Any) -> None:
        add_customer_arguments(parser)
        parser.add_argument("--reason", required=True, help="why (kept in the staff log)")
        parser.add_argument("--actor", help="the user the staff log names (default: the operating system's user)")

    def handle(self, *args: Any, **options: Any) -> None:
        client = storefront(options["client"])
        actor = operator(options["actor"])
        try:
            erasure = customer_erase(
                client=client,
                customer_id=options["customer_id"],
                actor=actor,
                reason=options["reason"],
                source=ChangeSource.WORKER,
            )
        except NotFound:
            raise CommandError(f"{options['client']} has no customer {options['customer_id']!r} to erase.") from None
        except (ApplicationError, ValueError) as exc:
            raise CommandError(f"Not erased: {exc}") from exc
        changed = ", ".join(f"{kind} {count}" for kind, count in erasure.counts.items() if count)
        self.stdout.write(self.style.SUCCESS(f"Customer {erasure.customer.public_id} erased ({changed or 'nothing'})."))
