"""Health probes, metrics, API docs, request ids, and production settings."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from config.encryption import key_id, new_key, parse_key

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
CLOSED = "redis://127.0.0.1:1/0"


def test_live_is_ok():
    response = Client().get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_is_ok_with_database_cache_and_broker():
    response = Client().get("/health/ready")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "cache": "ok", "broker": "ok"}


def test_ready_is_503_naming_the_broker_when_it_is_down(settings):
    settings.CELERY_BROKER_URL = CLOSED

    response = Client().get("/health/ready")

    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]


def test_ready_is_503_naming_the_cache_when_it_is_down(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "config.cache.RedisCache",
            "LOCATION": CLOSED,
            "OPTIONS": {"socket_connect_timeout": 0.5},
        }
    }

    response = Client().get("/health/ready")

    assert response.status_code == 503
    assert response.json()["failing"] == ["cache"]


def test_metrics_are_prometheus_text():
    response = Client().get("/metrics")

    assert response.status_code == 200
    assert "django_http_requests_before_middlewares_total" in response.content.decode()


def test_schema_and_docs_are_served():
    schema = Client().get("/api/schema/")
    docs = Client().get("/api/docs/")

    assert schema.status_code == 200
    assert b"/api/v1/auth/token/" in schema.content
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()


def test_admin_login_page_is_served():
    response = Client().get("/admin/login/")

    assert response.status_code == 200
    assert b"password" in response.content


def test_request_id_is_echoed_or_made():
    given = Client().get("/health/live", HTTP_X_REQUEST_ID="req-123")
    made = Client().get("/health/live")
    hostile = Client().get("/health/live", HTTP_X_REQUEST_ID="bad id\nwith newline")

    assert given["X-Request-ID"] == "req-123"
    assert len(made["X-Request-ID"]) == 32
    assert hostile["X-Request-ID"] != "bad id\nwith newline"


def _run_settings(env_overrides: dict[str, str], code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "DJANGO_SECRET_KEY", "JWT_SIGNING_KEY"}}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings", **env_overrides})
    return subprocess.run(  # noqa: S603
        [sys.executable, "-c", f"import django; django.setup(); from django.conf import settings; {code}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "secret",
    [None, "short-secret", "django-insecure-local-development-key-do-not-use-in-production"],
    ids=["default", "short", "insecure-default"],
)
def test_production_refuses_an_insecure_secret_key(secret):
    env = {"DEBUG": "false"}
    if secret is not None:
        env["DJANGO_SECRET_KEY"] = secret

    result = _run_settings(env, "print(settings.DEBUG)")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_with_a_good_key_turns_on_secure_settings():
    key = "p7G!x2#Lm9qR4vT8wZ1yB6nC3dF5hJ0kS$eU%iO^aQ&sW*zX(c)V-b_N+M=" * 1

    result = _run_settings(
        {"DEBUG": "false", "DJANGO_SECRET_KEY": key, "ENCRYPTION_KEYS": new_key(), "BLIND_INDEX_KEY": new_key()},
        "print(settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.SECURE_HSTS_SECONDS, "
        "settings.SECURE_CONTENT_TYPE_NOSNIFF, settings.X_FRAME_OPTIONS)",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "31536000", "True", "DENY"]


def test_production_response_carries_security_headers(settings):
    settings.DEBUG = False
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_SSL_REDIRECT = False

    response = Client().get("/health/live", secure=True)

    assert response["Strict-Transport-Security"].startswith("max-age=31536000")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"


def test_django_system_checks_pass():
    """`manage.py check` is what runserver and gunicorn deployments run first."""
    from django.core.management import call_command

    call_command("check", fail_level="WARNING")


GOOD_KEY = "p7G!x2#Lm9qR4vT8wZ1yB6nC3dF5hJ0kS$eU%iO^aQ&sW*zX(c)V-b_N+M="


@pytest.mark.parametrize("missing", ["ENCRYPTION_KEYS", "BLIND_INDEX_KEY"])
def test_production_refuses_to_start_without_the_personal_data_keys(missing):
    env = {"DEBUG": "false", "DJANGO_SECRET_KEY": GOOD_KEY, "ENCRYPTION_KEYS": new_key(), "BLIND_INDEX_KEY": new_key()}
    del env[missing]

    result = _run_settings(env, "print(settings.DEBUG)")

    assert result.returncode != 0
    assert f"{missing} (or {missing}_FILE) is required" in result.stderr


def test_a_malformed_key_is_refused_and_keys_come_from_a_file_newest_first(tmp_path):
    bad = _run_settings({"ENCRYPTION_KEYS": "not-a-key"}, "print(1)")
    assert bad.returncode != 0
    assert "ImproperlyConfigured" in bad.stderr
    assert "not-a-key" not in bad.stderr  # a refused secret is never echoed

    newest, older = new_key(), new_key()
    keys = tmp_path / "encryption_keys"
    keys.write_text(f"{newest}\n{older}\n")
    env = {
        "DEBUG": "false",
        "DJANGO_SECRET_KEY": GOOD_KEY,
        "ENCRYPTION_KEYS_FILE": str(keys),
        "BLIND_INDEX_KEY": new_key(),
    }
    result = _run_settings(
        env, "from config.encryption import keyring; print(keyring().current_id, len(settings.ENCRYPTION_KEYS))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [key_id(parse_key(newest)), "2"]

    both = _run_settings({**env, "ENCRYPTION_KEYS": newest}, "print(1)")
    assert both.returncode != 0
    assert "not both" in both.stderr
