"""The image's commands, run outside Docker exactly as the Dockerfile runs them.

The Dockerfile is read, not copied: its runtime `ENV` (DEBUG=false, PATH with the venv first), its
`RUN ... collectstatic` step and its `ENTRYPOINT` (scripts/entrypoint.sh, WORKDIR /app mapped to this
checkout) drive the processes. `stack` starts, once for this folder, on a database of its own (created
here, migrated by `entrypoint.sh migrate`) and its own Redis database: web (gunicorn), worker and beat.
"""

import base64
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import yaml

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
REDIS_DB = 9  # the stack's broker and cache: apart from the in-process tests' database 0
START_SECONDS = 120  # generous: other test runs may share the cores


@dataclass(frozen=True)
class Image:
    """What the Dockerfile's runtime stage declares."""

    workdir: str
    env: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]
    runs: list[str]

    def local(self, path: str) -> str:
        """A path inside the image, in this checkout (WORKDIR is where the code is copied)."""
        return str(ROOT / Path(path).relative_to(self.workdir)) if path.startswith(self.workdir + "/") else path

    def command(self, *args: str) -> list[str]:
        """`docker run IMAGE args...` as a local argv: the entrypoint with the given (or default) command."""
        return [self.local(part) for part in self.entrypoint] + list(args or self.cmd)


def read_image() -> Image:
    """The runtime stage of the Dockerfile: WORKDIR, ENV, ENTRYPOINT, CMD and RUN lines (no continuations)."""
    stage = DOCKERFILE.read_text().split("AS runtime", 1)[1]
    lines = [line.strip() for line in stage.splitlines() if line.strip() and not line.startswith("#")]
    workdir, env, entrypoint, cmd, runs = "", {}, [], [], []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        if keyword == "WORKDIR":
            workdir = rest
        elif keyword == "ENV":
            env.update(dict(item.split("=", 1) for item in shlex.split(rest)))
        elif keyword == "ENTRYPOINT":
            entrypoint = _exec_form(rest)
        elif keyword == "CMD":
            cmd = _exec_form(rest)
        elif keyword == "RUN":
            runs.append(rest)
    return Image(workdir=workdir, env=env, entrypoint=entrypoint, cmd=cmd, runs=runs)


@cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def healthcheck_argv(service: str) -> list[str]:
    """The arguments the service's health check passes to the image's entrypoint (exec form, CMD)."""
    test = compose()["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD", test
    entrypoint = read_image().entrypoint
    assert test[1 : 1 + len(entrypoint)] == entrypoint, f"{service}'s health check should use the entrypoint"
    return [str(part) for part in test[1 + len(entrypoint) :]]


def _exec_form(text: str) -> list[str]:
    value = json.loads(text)
    assert isinstance(value, list), f"use the exec form: {text}"
    return [str(part) for part in value]


def image_env(image: Image, **extra: str) -> dict[str, str]:
    """A clean environment as in the container: the image's ENV (its venv is ours), then `extra`."""
    env = {"HOME": os.environ.get("HOME", str(ROOT)), "LANG": "C.UTF-8", "PATH": os.environ["PATH"]}
    for key, value in image.env.items():
        value = value.replace("$PATH", env["PATH"]).replace("${PATH}", env["PATH"])
        env[key] = value.replace("/opt/venv/bin", str(ROOT / ".venv" / "bin"))
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], *, seconds: float, what: str, log: Callable[[], str] = str) -> None:
    """Poll `check` (tests.helpers.wait_for) until it is true; fail after `seconds` with `what` and the process log."""
    try:
        wait_for(check, timeout=seconds, interval=0.2)
    except AssertionError:
        pytest.fail(f"{what} not within {seconds:.0f} s\n{log()[-4000:]}")


def get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own loopback server
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, OSError):
        return 0, b""  # not listening (yet)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGTERM)  # its own session: gunicorn's or celery's children too
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)


@dataclass
class Stack:
    image: Image
    env: dict[str, str]
    url: str
    static_root: Path
    schedule_file: Path
    processes: dict[str, Process] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 60, **extra: str) -> subprocess.CompletedProcess:
        """`docker run IMAGE args...` (or `docker exec`): the entrypoint with these arguments, to the end."""
        return subprocess.run(  # noqa: S603 - our own script
            self.image.command(*args),
            cwd=ROOT,
            env={**self.env, **extra},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _start(image: Image, name: str, env: dict[str, str], logs: Path) -> Process:
    log_path = logs / f"{name}.log"
    with log_path.open("w") as out:
        popen = subprocess.Popen(  # noqa: S603 - our own script
            image.command(name), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Process(name=name, popen=popen, log_path=log_path)


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server (DATABASE_URL's), dropped afterwards."""
    server = os.environ["DATABASE_URL"]
    name = f"deploy_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def image() -> Image:
    return read_image()


@pytest.fixture(scope="session")
def static_root(image, tmp_path_factory) -> Path:
    """The image build's collectstatic step, run as the Dockerfile runs it, into a temporary STATIC_ROOT."""
    root = tmp_path_factory.mktemp("static")
    steps = [run for run in image.runs if "collectstatic" in run]
    assert len(steps) == 1, f"the Dockerfile should run collectstatic once, not {steps}"
    argv = [image.local(part) for part in shlex.split(steps[0])]
    result = subprocess.run(  # noqa: S603 - the Dockerfile's own step
        argv, cwd=ROOT, env=image_env(image, STATIC_ROOT=str(root)), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return root


@pytest.fixture(scope="session")
def stack(image, static_root, tmp_path_factory) -> Iterator[Stack]:
    """migrate, then web, worker and beat: the image's commands on the test PostgreSQL and Redis, DEBUG=false."""
    logs = tmp_path_factory.mktemp("logs")
    port = free_port()
    redis_url = urlunsplit(urlsplit(os.environ["REDIS_URL"])._replace(path=f"/{REDIS_DB}"))
    with fresh_database() as database_url:
        env = image_env(
            image,
            DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
            ENCRYPTION_KEYS=base64.b64encode(secrets.token_bytes(32)).decode(),
            BLIND_INDEX_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            PAYMENTS_GATEWAY="simulator",
            HOST="127.0.0.1",
            PORT=str(port),
            STATIC_ROOT=str(static_root),
            BEAT_SCHEDULE_FILE=str(logs / "celerybeat-schedule"),
            LOG_TASK_SUCCESS="true",  # the tests read a task's "succeeded" line in the worker's log
        )
        result = subprocess.run(  # noqa: S603 - our own script
            image.command("migrate"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
        )
        assert result.returncode == 0, result.stdout + result.stderr
        stack = Stack(
            image=image,
            env=env,
            url=f"http://127.0.0.1:{port}",
            static_root=static_root,
            schedule_file=logs / "celerybeat-schedule",
        )
        try:
            for name in ("web", "worker", "beat"):
                stack.processes[name] = _start(image, name, env, logs)
            web = stack.processes["web"]
            wait_until(
                lambda: not web.alive() or get(f"{stack.url}/health/ready")[0] == 200,
                seconds=START_SECONDS,
                what="gunicorn answering /health/ready",
                log=web.log,
            )
            for process in stack.processes.values():
                assert process.alive(), f"{process.name} exited {process.popen.returncode}\n{process.log()[-4000:]}"
            yield stack
        finally:
            for process in stack.processes.values():
                process.stop()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """The system Chromium, as in tests/e2e."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}
