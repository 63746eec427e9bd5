"""A real gunicorn, as the image runs it, on the test database: for tests that need HTTP on a socket.

`gunicorn(log_path, env)` starts `gunicorn -c config/gunicorn.conf.py` with DEBUG=false and the simulator
gateway on a free loopback port, on the database the test uses (its DATABASE_URL, unless `env` says
otherwise), and the rate limits at their defaults (the test command's RATELIMIT_* are dropped). It yields
the port once /health/live answers, and stops the whole process group afterwards (a gracious stop first;
threads stuck on a frozen socket get SIGKILL).
"""

import base64
import os
import secrets
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from django.db import connection

from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """The URL of the database this test process uses (the test database under pytest-django)."""
    db = connection.settings_dict
    auth = quote(db["USER"]) + (":" + quote(db["PASSWORD"]) if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@contextmanager
def gunicorn(log_path: Path, env: dict[str, str] | None = None) -> Iterator[int]:
    port = free_port()
    full_env = {key: value for key, value in os.environ.items() if not key.startswith("RATELIMIT_")}
    full_env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        ENCRYPTION_KEYS=base64.b64encode(secrets.token_bytes(32)).decode(),
        BLIND_INDEX_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        DATABASE_URL=database_url(),
        HOST="127.0.0.1",
        LOG_LEVEL="WARNING",
        PAYMENTS_GATEWAY="simulator",
    )
    full_env.update(env or {})
    full_env["PORT"] = str(port)
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own virtualenv's gunicorn
            [str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", "config/gunicorn.conf.py"],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the master and its workers, to stop together
        )

    def live() -> bool:
        assert process.poll() is None, log_path.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=2) as response:  # noqa: S310
                return response.status == 200
        except OSError:
            return False

    try:
        wait_for(live, timeout=30, interval=0.1)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
