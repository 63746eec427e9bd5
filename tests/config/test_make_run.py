"""`make run` on a fresh machine: SQLite, every migration (data migrations included) and the demo data (issue #20's
migrations once used PostgreSQL-only SQL; this keeps the README's first command true)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str, database: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_URL", "DEBUG"))}
    env.update(
        DATABASE_URL=f"sqlite:///{database}", DJANGO_SETTINGS_MODULE="config.settings", CELERY_TASK_ALWAYS_EAGER="true"
    )
    return subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_make_runs_migrations_and_demo_data_work_on_sqlite(tmp_path):
    database = tmp_path / "db.sqlite3"

    migrated = _manage("migrate", "--noinput", database=database)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    demo = _manage("create_demo_data", database=database)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "demo-storefront" in demo.stdout
    assert "TOTP demo-agent" in demo.stdout
