"""`manage.py create_demo_data`: demo users for `make run` (idempotent), printed with their passwords.

Each demo staff member has a TOTP authenticator (kept across runs, so an app set up once keeps working); its
secret and otpauth:// URL are printed with the password, and `manage.py staff_totp_code USERNAME` prints the
current code (DEBUG only).
"""

from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from accounts.models import ApiRole, User
from accounts.services import Enrolment, api_client_create_or_update, staff_totp_enroll

DEMO_STOREFRONT = ("demo-storefront", "demo-storefront-password")
DEMO_FINANCE_CLIENT = ("demo-finance-api", "demo-finance-api-password")
DEMO_STAFF = ("finance", "finance-demo-password")
# One staff member per role (groups created by accounts/migrations/0002_staff_groups.py).
DEMO_ROLES = (
    ("finance_agent", "demo-agent", "demo-agent-password"),
    ("finance_lead", "demo-lead", "demo-lead-password"),
    ("finance_lead", "demo-lead-2", "demo-lead-2-password"),
    ("auditor", "demo-auditor", "demo-auditor-password"),
)


class Command(BaseCommand):
    help = "Create the demo API clients and a finance staff superuser (local use only)."

    def handle(self, *args: object, **options: object) -> None:
        api_client_create_or_update(name=DEMO_STOREFRONT[0], role=ApiRole.STOREFRONT, password=DEMO_STOREFRONT[1])
        api_client_create_or_update(name=DEMO_FINANCE_CLIENT[0], role=ApiRole.FINANCE, password=DEMO_FINANCE_CLIENT[1])
        staff, _ = User.objects.get_or_create(username=DEMO_STAFF[0], defaults={"email": "finance@example.com"})
        staff.is_staff = True
        staff.is_superuser = True
        staff.set_password(DEMO_STAFF[1])
        staff.save()
        enrolments = {DEMO_STAFF[0]: staff_totp_enroll(username=DEMO_STAFF[0], replace=False)}
        for group_name, username, password in DEMO_ROLES:
            member, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
            member.is_staff = True
            member.is_superuser = False
            member.set_password(password)
            member.save()
            member.groups.set([Group.objects.get(name=group_name)])
            enrolments[username] = staff_totp_enroll(username=username, replace=False)
        self.stdout.write("Demo credentials (local only):")
        self.stdout.write(f"  storefront API client  {DEMO_STOREFRONT[0]} / {DEMO_STOREFRONT[1]}")
        self.stdout.write(f"  finance API client     {DEMO_FINANCE_CLIENT[0]} / {DEMO_FINANCE_CLIENT[1]}")
        self.stdout.write(f"  admin (superuser)      {DEMO_STAFF[0]} / {DEMO_STAFF[1]}")
        for group_name, username, password in DEMO_ROLES:
            self.stdout.write(f"  admin ({group_name}){' ' * (15 - len(group_name))}{username} / {password}")
        self.stdout.write(
            "  admin sign-in also asks for a TOTP code: add a secret below to an authenticator app, or print the"
            " current code with `python manage.py staff_totp_code USERNAME`"
        )
        for username, enrolment in enrolments.items():
            self._totp(username, enrolment)
        self.stdout.write(
            "  token: curl -s -X POST http://127.0.0.1:8000/api/v1/auth/token/ -H 'Content-Type: application/json' "
            f'-d \'{{"username": "{DEMO_STOREFRONT[0]}", "password": "{DEMO_STOREFRONT[1]}"}}\''
        )
        self.stdout.write(
            "  risk: a usd payment of 500000 ($5,000) or more is held for review (Admin › Risk › Review queue);"
            " 5,000,000 or more is blocked"
        )

    def _totp(self, username: str, enrolment: Enrolment) -> None:
        self.stdout.write(f"  TOTP {username:<13}secret {enrolment.secret}  {enrolment.url}")
