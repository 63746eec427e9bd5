"""`manage.py audit_verify`: walk the staff action hash chain; exit 1 naming the first altered or removed row.

Personal values are verified through their digests: an erased value ("[erased]") keeps its row valid.
"""

from django.core.management.base import BaseCommand, CommandError

from audit.models import StaffAction
from audit.services import audit_verify


class Command(BaseCommand):
    help = "Verify the hash chain of staff actions; fail naming the first row altered or removed."

    def handle(self, *args: object, **options: object) -> None:
        broken = audit_verify()
        if broken is not None:
            raise CommandError(f"Audit trail broken at {broken}")
        self.stdout.write(f"Audit trail intact: {StaffAction.objects.count()} staff actions verified.")
