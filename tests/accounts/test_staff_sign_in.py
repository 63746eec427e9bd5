"""Staff sign-in: password and TOTP code, lockout after failed attempts, sessions that end, enrolment commands."""

import base64
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from accounts.management.commands.create_demo_data import DEMO_ROLES, DEMO_STAFF
from accounts.models import User
from config.admin.site import NO_DEVICE_MESSAGE
from tests.accounts.factories import PASSWORD, StaffUserFactory, UserFactory, totp_code
from tests.conftest import _force_login

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
INVALID_CODE = "Invalid token. Please make sure you have entered it correctly."


@pytest.fixture
def staff(db) -> User:
    return StaffUserFactory(username="ann", superuser=True)


def sign_in(client: Client, username: str, *, password: str = PASSWORD, code: str | None = "", **extra):
    data = {"username": username, "password": password}
    if code is not None:
        data["otp_token"] = code
    return client.post(LOGIN, data, **extra)


def signed_in(client: Client) -> bool:
    return client.get("/admin/").status_code == 200


def wrong_code(user: User) -> str:
    return f"{(int(totp_code(user)) + 1) % 1_000_000:06d}"


def test_a_password_without_a_code_is_refused(staff):
    client = Client()

    response = sign_in(client, "ann", code=None)

    assert response.status_code == 200
    assert response.context["form"].errors["__all__"] == ["Please enter your OTP token."]
    assert SESSION_KEY not in client.session
    assert client.get("/admin/")["Location"] == "/admin/login/?next=/admin/"


def test_a_wrong_code_is_refused(staff):
    client = Client()

    response = sign_in(client, "ann", code=wrong_code(staff))

    assert response.status_code == 200
    assert response.context["form"].errors["__all__"] == [INVALID_CODE]
    assert SESSION_KEY not in client.session
    assert not signed_in(client)


def test_the_password_and_the_current_code_sign_in_to_the_admin_index(staff):
    client = Client()

    response = sign_in(client, "ann", code=totp_code(staff))

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    index = client.get("/admin/")
    assert index.status_code == 200
    assert index.context["user"].username == "ann"
    assert index.context["user"].is_verified()
    assert "Site administration" in index.content.decode()


def test_a_code_is_taken_once(staff):
    code = totp_code(staff)
    assert sign_in(Client(), "ann", code=code).status_code == 302

    replayed = sign_in(Client(), "ann", code=code)

    assert replayed.status_code == 200
    assert replayed.context["form"].errors["__all__"] == [INVALID_CODE]


def test_a_staff_member_without_an_authenticator_cannot_sign_in(db):
    StaffUserFactory(username="bob", superuser=True, totp=False)
    client = Client()

    response = sign_in(client, "bob", code="123456")

    assert response.context["form"].errors["__all__"] == [NO_DEVICE_MESSAGE]
    assert not signed_in(client)


def test_a_session_signed_in_without_the_second_factor_is_refused(staff):
    client = Client()
    _force_login(client, staff)  # Django's own force_login: a password sign-in, no code

    response = client.get("/admin/")

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/"


def test_five_failed_passwords_lock_the_username_at_that_address_out_for_the_cool_off(staff, settings):
    assert (5, timedelta(minutes=15)) == (settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME)
    client = Client()
    with time_machine.travel(NOW, tick=False):
        failures = [sign_in(client, "ann", password="wrong-password-1", code="000000") for _ in range(5)]

        locked = sign_in(client, "ann", code=totp_code(staff))
        other_address = sign_in(Client(REMOTE_ADDR="10.0.0.7"), "ann", code=totp_code(staff))

    assert [response.status_code for response in failures] == [200, 200, 200, 200, 429]
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    assert SESSION_KEY not in client.session
    assert other_address.status_code == 302  # the combination of username and address is locked, not the user
    # the locked attempt started the cool-off again: still locked just before it ends
    with time_machine.travel(NOW + timedelta(minutes=14, seconds=59), tick=False):
        assert sign_in(client, "ann", code=totp_code(staff)).status_code == 429
    with time_machine.travel(NOW + timedelta(minutes=14, seconds=59) + timedelta(minutes=15, seconds=1), tick=False):
        allowed = sign_in(client, "ann", code=totp_code(staff))
    assert allowed.status_code == 302
    assert not AccessAttempt.objects.filter(username="ann", ip_address="127.0.0.1").exists()  # reset on success


def test_wrong_codes_with_the_right_password_lock_out_too(staff):
    client = Client()

    failures = [sign_in(client, "ann", code=wrong_code(staff)) for _ in range(5)]
    locked = sign_in(client, "ann", code=totp_code(staff))

    assert [response.status_code for response in failures] == [200, 200, 200, 200, 429]
    assert locked.status_code == 429
    assert not signed_in(client)


def test_the_api_token_endpoint_is_behind_the_same_lockout(db):
    shop = UserFactory(username="shop")
    api = APIClient()
    wrong = {"username": "shop", "password": "wrong-password-1"}
    right = {"username": "shop", "password": PASSWORD}

    failures = [api.post("/api/v1/auth/token/", wrong, format="json").status_code for _ in range(5)]
    locked = api.post("/api/v1/auth/token/", right, format="json")
    elsewhere = APIClient().post("/api/v1/auth/token/", right, format="json", REMOTE_ADDR="10.0.0.8")

    assert failures == [401] * 5
    assert locked.status_code == 401  # the same answer as a wrong password: the lock is not disclosed
    assert "access" not in locked.json()
    assert elsewhere.status_code == 200
    assert AccessAttempt.objects.get(username=shop.username, ip_address="127.0.0.1").failures_since_start == 6


def test_a_session_ends_after_thirty_idle_minutes(staff, settings):
    assert settings.ADMIN_SESSION_IDLE_SECONDS == 30 * 60
    client = Client()
    with time_machine.travel(NOW, tick=False):
        assert sign_in(client, "ann", code=totp_code(staff)).status_code == 302
    with time_machine.travel(NOW + timedelta(minutes=29), tick=False):
        assert signed_in(client)

    with time_machine.travel(NOW + timedelta(minutes=29 + 30), tick=False):
        response = client.get("/admin/")

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/"
    assert SESSION_KEY not in client.session


def test_a_session_ends_eight_hours_after_sign_in_however_busy(staff, settings):
    assert settings.SESSION_COOKIE_AGE == 8 * 3600
    client = Client()
    with time_machine.travel(NOW, tick=False):
        assert sign_in(client, "ann", code=totp_code(staff)).status_code == 302
    for minutes in range(20, 8 * 60, 20):
        with time_machine.travel(NOW + timedelta(minutes=minutes), tick=False):
            assert signed_in(client), minutes

    with time_machine.travel(NOW + timedelta(hours=8), tick=False):
        assert not signed_in(client)


def test_staff_totp_enroll_prints_a_secret_and_url_that_replace_the_old_authenticator(staff, capsys):
    old_code = totp_code(staff)

    call_command("staff_totp_enroll", "ann", "--backup-codes", "2")

    out = capsys.readouterr().out
    secret = re.search(r"^secret: ([A-Z2-7]+)$", out, re.MULTILINE).group(1)
    assert re.search(rf"^url: otpauth://totp/Payment%20Service%3Aann\?secret={secret}&", out, re.MULTILINE)
    backup = re.findall(r"^backup code: ([a-z2-7]{8})$", out, re.MULTILINE)
    assert len(backup) == 2
    device = TOTPDevice.objects.get(user=staff)
    assert device.confirmed
    assert sign_in(Client(), "ann", code=old_code).context["form"].errors["__all__"] == [INVALID_CODE]
    assert sign_in(Client(), "ann", code=totp_code(staff)).status_code == 302
    assert sign_in(Client(), "ann", code=backup[0]).status_code == 302  # a backup code, once
    assert sign_in(Client(), "ann", code=backup[0]).status_code == 200
    assert list(StaticToken.objects.values_list("token", flat=True)) == [backup[1]]


def test_staff_totp_enroll_refuses_an_api_client(db):
    UserFactory(username="shop")

    with pytest.raises(CommandError, match="no staff user named 'shop'"):
        call_command("staff_totp_enroll", "shop")

    assert not TOTPDevice.objects.exists()


def test_staff_totp_code_prints_the_current_code_with_debug_on_only(staff, settings, capsys):
    settings.DEBUG = True
    device = TOTPDevice.objects.get(user=staff)
    with time_machine.travel(NOW, tick=False):
        call_command("staff_totp_code", "ann")
        expected = f"{TOTP(device.bin_key).token():06d}"
    assert capsys.readouterr().out.strip() == expected

    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG on only"):
        call_command("staff_totp_code", "ann")
    assert capsys.readouterr().out == ""


def test_demo_staff_have_authenticators_printed_and_kept_across_runs(db, capsys, settings):
    call_command("create_demo_data")
    first = capsys.readouterr().out
    call_command("create_demo_data")
    second = capsys.readouterr().out

    usernames = [DEMO_STAFF[0], *(username for _, username, _ in DEMO_ROLES)]
    for username in usernames:
        device = TOTPDevice.objects.get(user__username=username, confirmed=True)
        line = re.search(rf"^  TOTP {re.escape(username)} +secret ([A-Z2-7]+)  (otpauth://\S+)$", first, re.M)
        assert line is not None, username
        assert TOTP(device.bin_key).token() == TOTP(_b32(line.group(1))).token()
        assert line.group(0) in second  # the same secret on the second run
    assert "staff_totp_code USERNAME" in first
    settings.DEBUG = True
    call_command("staff_totp_code", "demo-agent")
    code = capsys.readouterr().out.strip()
    assert sign_in(Client(), "demo-agent", password="demo-agent-password", code=code).status_code == 302


def _b32(secret: str) -> bytes:
    return base64.b32decode(secret + "=" * (-len(secret) % 8))


@pytest.mark.parametrize("password", ["short-pass1", "password1234", "123456789012345"])
def test_weak_staff_passwords_are_refused(password):
    with pytest.raises(ValidationError):
        validate_password(password, User(username="ann", is_staff=True))


def test_the_test_password_passes_the_validators():
    validate_password(PASSWORD, User(username="ann", is_staff=True))
