"""Shared fixtures: the suite runs on PostgreSQL and Redis started by `make test`."""

import pytest
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import ApiRole, User


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise pytest.UsageError("The suite runs on PostgreSQL: use `make test` (or set DATABASE_URL).")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit counters live in the cache (Redis under `make test`): start every test clean."""
    cache.clear()
    yield
    cache.clear()


def client_for(user: User) -> APIClient:
    """A new APIClient holding a JWT for `user` (one per thread in concurrency tests)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    client.user = user
    return client


@pytest.fixture
def make_client(db):
    """Create an API client user and return an APIClient authenticated as it."""

    def factory(name: str = "shop", role: str = ApiRole.STOREFRONT) -> APIClient:
        user = User.objects.create_user(username=name, password="a-long-test-password", api_role=role)
        return client_for(user)

    return factory


@pytest.fixture
def storefront(make_client) -> APIClient:
    return make_client("storefront-a", ApiRole.STOREFRONT)


@pytest.fixture
def finance(make_client) -> APIClient:
    return make_client("finance-a", ApiRole.FINANCE)


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"
