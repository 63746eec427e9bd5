"""`manage.py customer_export --client NAME --customer-id ID [--output FILE]`: everything held about a customer."""

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from rest_framework.exceptions import NotFound

from privacy.management.commands._common import add_customer_arguments, storefront
from privacy.selectors import customer_export


class Command(BaseCommand):
    help = "Write everything held about a customer as JSON (to --output, or the standard output)."

    def add_arguments(self, parser: Any) -> None:
        add_customer_arguments(parser)
        parser.add_argument("--output", help="the file to write (default: the standard output)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            exported = customer_export(client=storefront(options["client"]), customer_id=options["customer_id"])
        except NotFound:
            raise CommandError(f"{options['client']} has no customer {options['customer_id']!r}.") from None
        text = json.dumps(exported, indent=2, sort_keys=True, default=str)
        if options["output"]:
            Path(options["output"]).write_text(text + "\n", encoding="utf-8")
            self.stderr.write(f"Written to {options['output']}.")
        else:
            self.stdout.write(text)
