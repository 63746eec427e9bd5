"""`manage.py purge_idempotency_keys`: delete idempotency keys past their 24-hour retention."""

from django.core.management.base import BaseCommand

from payments.idempotency import idempotency_purge_expired


class Command(BaseCommand):
    help = "Delete idempotency keys older than their retention (24 h)."

    def handle(self, *args: object, **options: object) -> None:
        deleted = idempotency_purge_expired()
        self.stdout.write(f"Deleted {deleted} expired idempotency key(s).")
