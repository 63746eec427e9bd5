"""Every secret setting can come from `NAME_FILE` (Docker secrets), never from both; none shows in a log line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.encryption import new_key

ROOT = Path(__file__).resolve().parents[2]
GOOD_KEY = "p7G!x2#Lm9qR4vT8wZ1yB6nC3dF5hJ0kS$eU%iO^aQ&sW*zX(c)V-b_N+M="
OTHER_KEY = "Zq8#Wm2!Lx7$Rv4%Tn1^Yb6&Kc3*Hd9(Jf5)Gs0-Pa_Ue+Io=Ea~Nb?Mc<V>"

# Each secret, the value its file holds, and how the settings expose it.
SECRETS = {
    "DJANGO_SECRET_KEY": (GOOD_KEY, "settings.SECRET_KEY"),
    "JWT_SIGNING_KEY": (OTHER_KEY, "settings.SIMPLE_JWT['SIGNING_KEY']"),
    "STRIPE_SECRET_KEY": ("sk_test_51FileBornKey0123456789", "settings.STRIPE_SECRET_KEY"),
    "STRIPE_WEBHOOK_SECRET": ("whsec_FileBornSecret0123456789", "settings.STRIPE_WEBHOOK_SECRET"),
    "DATABASE_URL": (
        "postgres://payments:db-pass-from-file@db.internal:5432/payments",
        "settings.DATABASES['default']['PASSWORD']",
    ),
    "REDIS_URL": ("redis://:redis-pass-from-file@cache.internal:6379/0", "settings.REDIS_URL"),
    "CELERY_BROKER_URL": ("redis://:broker-pass-from-file@broker.internal:6379/1", "settings.CELERY_BROKER_URL"),
    "EVENTS_BROKER_URL": ("amqp://events:events-pass-from-file@mq.internal:5672//", "settings.EVENTS_BROKER_URL"),
    "ENCRYPTION_KEYS": (new_key(), "settings.ENCRYPTION_KEYS[0]"),
    "BLIND_INDEX_KEY": (new_key(), "settings.BLIND_INDEX_KEY"),
}
EXPECTED = {name: value for name, (value, _) in SECRETS.items()}
EXPECTED["DATABASE_URL"] = "db-pass-from-file"


def run_settings(env_overrides: dict[str, str], code: str) -> subprocess.CompletedProcess:
    """`code` after django.setup() in a new interpreter, with none of the secrets from this process's environment."""
    ours = {*SECRETS, *(f"{name}_FILE" for name in SECRETS), "DEBUG", "PAYMENTS_GATEWAY"}
    env = {key: value for key, value in os.environ.items() if key not in ours}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings", **env_overrides})
    return subprocess.run(  # noqa: S603
        [sys.executable, "-c", f"import django; django.setup(); from django.conf import settings\n{code}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def secret_files(tmp_path) -> dict[str, str]:
    """A file per secret, as Docker mounts them under /run/secrets (with the trailing newline editors add)."""
    env = {"DEBUG": "false"}
    for name, (value, _) in SECRETS.items():
        path = tmp_path / name.lower()
        path.write_text(f"{value}\n  \n")
        env[f"{name}_FILE"] = str(path)
    return env


def test_every_secret_is_read_from_its_file_stripped(secret_files):
    fields = ", ".join(f"{name!r}: {expression}" for name, (_, expression) in SECRETS.items())
    code = f"import json; print(json.dumps({{{fields}}}))"

    result = run_settings(secret_files, code)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == EXPECTED


@pytest.mark.parametrize("name", list(SECRETS))
def test_a_secret_set_both_ways_is_refused(name, secret_files):
    result = run_settings({**secret_files, name: SECRETS[name][0]}, "print('started')")

    assert result.returncode != 0
    assert f"ImproperlyConfigured: Set {name} or {name}_FILE, not both." in result.stderr
    assert "started" not in result.stdout


def test_a_missing_or_empty_file_is_refused_without_starting(tmp_path, secret_files):
    empty = tmp_path / "empty"
    empty.write_text("\n")

    missing = run_settings({**secret_files, "DJANGO_SECRET_KEY_FILE": str(tmp_path / "nope")}, "print('started')")
    blank = run_settings({**secret_files, "STRIPE_WEBHOOK_SECRET_FILE": str(empty)}, "print('started')")

    assert missing.returncode != 0
    assert f"DJANGO_SECRET_KEY_FILE={tmp_path / 'nope'} cannot be read: No such file or directory" in missing.stderr
    assert blank.returncode != 0
    assert f"STRIPE_WEBHOOK_SECRET_FILE={empty} is empty." in blank.stderr


def test_a_weak_key_from_a_file_is_refused_and_not_echoed(tmp_path, secret_files):
    weak = tmp_path / "weak"
    weak.write_text("short-secret-from-a-file")

    result = run_settings({**secret_files, "DJANGO_SECRET_KEY_FILE": str(weak)}, "print('started')")

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is too short" in result.stderr
    assert "short-secret-from-a-file" not in result.stderr


LOGGING_CODE = """
import logging
logger = logging.getLogger("payments.tests")
values = [settings.SECRET_KEY, settings.SIMPLE_JWT["SIGNING_KEY"], settings.STRIPE_SECRET_KEY,
          settings.STRIPE_WEBHOOK_SECRET, settings.ENCRYPTION_KEYS[0], settings.BLIND_INDEX_KEY,
          settings.DATABASES["default"]["PASSWORD"], settings.REDIS_URL, settings.CELERY_BROKER_URL,
          settings.EVENTS_BROKER_URL]
logger.warning("settings %s", " ".join(values))
logger.warning("keys", extra={"encryption_keys": settings.ENCRYPTION_KEYS, "context": {"blind_index_key": "x" * 44}})
logger.warning("cannot reach %s", settings.CELERY_BROKER_URL)
try:
    raise RuntimeError("ENCRYPTION_KEYS=" + settings.ENCRYPTION_KEYS[0] + " and " + settings.SECRET_KEY)
except RuntimeError:
    logger.exception("failed")
"""


def test_no_configured_secret_reaches_a_log_line(secret_files):
    result = run_settings(secret_files, LOGGING_CODE)

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["message"] for line in lines] == [
        "settings "
        + " ".join(
            [
                "[REDACTED]",
                "[REDACTED]",
                "[REDACTED]",
                "[REDACTED]",
                "[REDACTED]",
                "[REDACTED]",
                "[REDACTED]",
                "redis://:[REDACTED]@cache.internal:6379/0",
                "redis://:[REDACTED]@broker.internal:6379/1",
                "amqp://events:[REDACTED]@mq.internal:5672//",
            ]
        ),
        "keys",
        "cannot reach redis://:[REDACTED]@broker.internal:6379/1",
        "failed",
    ]
    assert lines[1]["encryption_keys"] == "[REDACTED]"
    assert lines[1]["context"] == {"blind_index_key": "[REDACTED]"}
    assert "RuntimeError: ENCRYPTION_KEYS=[REDACTED] and [REDACTED]" in lines[3]["exception"]
    for value in EXPECTED.values():
        assert value not in result.stdout
    for secret in ("db-pass-from-file", "redis-pass-from-file", "broker-pass-from-file", "events-pass-from-file"):
        assert secret not in result.stdout
