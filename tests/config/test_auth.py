"""Token endpoints and API client creation (their rate limits: test_rate_limits.py)."""

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from accounts.models import User
from tests.accounts.factories import PASSWORD

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
