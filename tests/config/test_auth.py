"""Token endpoints and API client creation (their rate limits: test_rate_limits.py)."""

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import User
from accounts.tasks import purge_expired_tokens
from tests.accounts.factories import PASSWORD, StaffUserFactory, UserFactory, totp_code
from tests.helpers import run_in_threads

pytestmark = pytest.mark.django_db


def test_token_obtain_and_refresh(shop):
    client = APIClient()

    tokens = client.post("/api/v1/auth/token/", {"username": shop.username, "password": PASSWORD}, format="json")
    refreshed = client.post("/api/v1/auth/token/refresh/", {"refresh": tokens.json()["refresh"]}, format="json")

    assert tokens.status_code == 200
    assert set(tokens.json()) == {"access", "refresh"}
    assert refreshed.status_code == 200
    assert "access" in refreshed.json()


def test_wrong_password_is_401(shop):
    response = APIClient().post("/api/v1/auth/token/", {"username": shop.username, "password": "wrong"}, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert response.json()["error"]["code"] == "invalid_credentials"


def test_bad_refresh_token_is_401():
    response = APIClient().post("/api/v1/auth/token/refresh/", {"refresh": "garbage"}, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_invalid"


def test_create_api_client_for_both_roles_and_rerun(capsys):
    call_command("create_api_client", "shop-one", "--role", "storefront")
    generated = capsys.readouterr().out
    call_command("create_api_client", "fin-one", "--role", "finance", "--password", "given-password-123")
    call_command("create_api_client", "shop-one", "--role", "storefront")
    rerun = capsys.readouterr().out

    password = next(line.split(": ", 1)[1] for line in generated.splitlines() if line.startswith("password: "))
    shop = User.objects.get(username="shop-one")
    fin = User.objects.get(username="fin-one")
    assert shop.api_role == "storefront"
    assert shop.check_password(password)
    assert fin.api_role == "finance"
    assert fin.check_password("given-password-123")
    assert "already exists" in rerun
    assert User.objects.filter(username="shop-one").count() == 1
    assert not shop.is_staff


def test_api_client_can_use_its_token_after_creation(capsys):
    call_command("create_api_client", "shop-two", "--role", "storefront", "--password", "given-password-123")
    client = APIClient()

    response = client.post(
        "/api/v1/auth/token/", {"username": "shop-two", "password": "given-password-123"}, format="json"
    )

    assert response.status_code == 200


# --- Refresh rotation, revocation by a password change, who may hold API tokens (issue 16) -----------------


def _tokens(username: str, password: str = PASSWORD) -> dict[str, str]:
    response = APIClient().post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _refresh(refresh: str) -> Response:
    return APIClient().post("/api/v1/auth/token/refresh/", {"refresh": refresh}, format="json")


def _list_payments(access: str) -> Response:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client.get("/api/v1/payments/")


def _assert_token_refused(response: Response) -> None:
    assert response.status_code == 401, response.content
    assert response.json()["error"] == {
        "type": "authentication_error",
        "code": "token_invalid",
        "message": "The token is invalid or expired.",
    }


def test_refresh_rotates_and_a_used_refresh_token_is_refused(shop):
    first = _tokens(shop.username)

    rotated = _refresh(first["refresh"])
    replayed = _refresh(first["refresh"])
    next_round = _refresh(rotated.json()["refresh"])

    assert rotated.status_code == 200
    assert rotated.json()["refresh"] != first["refresh"]
    assert _list_payments(rotated.json()["access"]).status_code == 200
    _assert_token_refused(replayed)
    assert next_round.status_code == 200


def test_a_password_change_refuses_the_tokens_issued_before_it(shop):
    before = _tokens(shop.username)
    assert _list_payments(before["access"]).status_code == 200

    call_command("create_api_client", shop.username, "--role", "storefront", "--password", "a-new-long-password")

    _assert_token_refused(_list_payments(before["access"]))
    _assert_token_refused(_refresh(before["refresh"]))
    after = _tokens(shop.username, "a-new-long-password")
    assert _list_payments(after["access"]).status_code == 200
    assert _refresh(after["refresh"]).status_code == 200


def test_tokens_refreshed_before_a_password_change_are_refused_too(shop):
    rotated = _refresh(_tokens(shop.username)["refresh"]).json()

    shop.set_password("a-new-long-password")
    shop.save()

    _assert_token_refused(_list_payments(rotated["access"]))
    _assert_token_refused(_refresh(rotated["refresh"]))


def test_an_authenticated_request_reads_the_client_once(shop):
    access = _tokens(shop.username)["access"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/v1/payments/")

    assert response.status_code == 200
    user_reads = [q["sql"] for q in queries.captured_queries if 'FROM "accounts_user"' in q["sql"]]
    assert len(user_reads) == 1, user_reads


def test_refreshing_a_deleted_clients_token_is_401(shop):
    refresh = _tokens(shop.username)["refresh"]
    shop.delete()

    _assert_token_refused(_refresh(refresh))


def test_refreshing_a_deactivated_clients_token_is_401(shop):
    refresh = _tokens(shop.username)["refresh"]
    shop.is_active = False
    shop.save()

    response = _refresh(refresh)

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("kind", ["superuser", "staff"])
def test_staff_and_superusers_cannot_obtain_api_tokens(kind):
    user = StaffUserFactory(superuser=kind == "superuser")
    # Even with an API role set behind the service's back, a staff account is not an API client.
    User.objects.filter(pk=user.pk).update(api_role="finance")

    response = APIClient().post("/api/v1/auth/token/", {"username": user.username, "password": PASSWORD}, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert response.json()["error"]["code"] == "invalid_credentials"
    assert "access" not in response.json()


def test_a_client_promoted_to_superuser_cannot_refresh(shop):
    refresh = _tokens(shop.username)["refresh"]
    User.objects.filter(pk=shop.pk).update(is_superuser=True)

    response = _refresh(refresh)

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("password", ["ab", "password1234"])
def test_create_api_client_refuses_a_weak_password(password):
    with pytest.raises(CommandError) as refused:
        call_command("create_api_client", "shop-weak", "--role", "storefront", "--password", password)

    assert "password" in str(refused.value).lower()
    assert not User.objects.filter(username="shop-weak").exists()


def test_create_api_client_keeps_the_old_password_when_the_new_one_is_weak(shop):
    with pytest.raises(CommandError, match="too short"):
        call_command("create_api_client", shop.username, "--role", "storefront", "--password", "ab")

    shop.refresh_from_db()
    assert shop.check_password(PASSWORD)


def test_admin_sessions_are_short_and_end_with_the_browser(settings):
    StaffUserFactory(username="admin-session", superuser=True)
    client = Client()

    before = timezone.now()
    response = client.post(
        "/admin/login/",
        {"username": "admin-session", "password": PASSWORD, "otp_token": totp_code("admin-session"), "next": "/admin/"},
    )

    assert response.status_code == 302
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["max-age"] == ""  # a browser-session cookie: gone when the browser closes
    assert cookie["expires"] == ""
    session = Session.objects.get(session_key=cookie.value)
    assert settings.SESSION_COOKIE_AGE == 8 * 3600
    assert before + timedelta(hours=8) <= session.expire_date <= timezone.now() + timedelta(hours=8)


@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_with_one_token_let_only_one_through(settings):
    settings.RATELIMIT_ENABLE = False
    client = UserFactory(username="racer")
    refresh = _tokens(client.username)["refresh"]

    responses = run_in_threads([lambda: _refresh(refresh) for _ in range(8)])

    assert sorted(r.status_code for r in responses) == [200] + [401] * 7
    winner = next(r for r in responses if r.status_code == 200)
    assert _refresh(winner.json()["refresh"]).status_code == 200


def test_expired_refresh_token_records_are_purged(shop):
    live = _tokens(shop.username)["refresh"]
    spent = _tokens(shop.username)["refresh"]
    assert _refresh(spent).status_code == 200
    expired_jtis = set(OutstandingToken.objects.values_list("jti", flat=True)) - {RefreshToken(live)["jti"]}
    OutstandingToken.objects.filter(jti__in=expired_jtis).update(expires_at=timezone.now() - timedelta(seconds=1))

    purged = purge_expired_tokens.apply().get()

    assert purged == len(expired_jtis) == 2  # the spent token and the one its refresh answered
    assert list(OutstandingToken.objects.values_list("jti", flat=True)) == [RefreshToken(live)["jti"]]
    assert not BlacklistedToken.objects.exists()
    assert _refresh(live).status_code == 200
