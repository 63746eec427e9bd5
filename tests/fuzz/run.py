"""`make fuzz`: schemathesis against the live service, from its own `/api/schema/`, as a storefront and as finance.

Run under scripts/with-services.sh (DATABASE_URL, REDIS_URL). It starts the service as the image does
(scripts/entrypoint.sh: `collectstatic` into a temporary STATIC_ROOT, `migrate` on a database of its own,
gunicorn from config/gunicorn.conf.py with DEBUG=false, one Celery worker, the simulator gateway), creates
one API client per role with `manage.py create_api_client`, then runs schemathesis once per client:

- every check (`--checks all`), with tests/fuzz/checks.py's `positive_data_accepted` (a request the schema
  calls valid must be accepted; the state-dependent answers it allows are listed there), positive and
  negative data, the schema's OpenAPI links (create -> confirm -> capture -> refund) as stateful tests, a
  response-time bound, and a wall-clock budget per run;
- rate limits raised for the run (the fuzzer's request rate is not what is under test).

Exit status: 0 only when both runs finish with no failure and the web log holds no ERROR line.
"""

import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = str(ROOT / "scripts" / "entrypoint.sh")
BIN = ROOT / ".venv" / "bin"
REDIS_DB = 11  # apart from the in-process tests (0) and tests/deploy (9)
START_SECONDS = 120
# Five to twelve minutes in all: two runs, each bounded by examples per operation and by a wall-clock budget that
# is there to catch a hang, not to cut a run short: a storefront run (stateful links included) has taken
# 194 s in one CI run and more than 300 s in another on the 2-core CI machine (seed and machine), so the
# budget leaves it room.
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "50"))
RUN_BUDGET_SECONDS = int(os.environ.get("FUZZ_RUN_SECONDS", "450"))
MAX_RESPONSE_MS = int(os.environ.get("FUZZ_MAX_RESPONSE_MS", "5000"))
ROLES = ("storefront", "finance")


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request(url: str, body: dict | None = None, timeout: float = 10) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310 - our own loopback server
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def run(argv: list[str], env: dict[str, str], timeout: float = 180) -> None:
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603
    if result.returncode != 0:
        sys.exit(
            f"fuzz: {' '.join(argv[:3])} failed ({result.returncode})\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )


def start(name: str, env: dict[str, str], logs: Path) -> subprocess.Popen:
    out = (logs / f"{name}.log").open("w")
    return subprocess.Popen(  # noqa: S603 - our own script
        [ENTRYPOINT, name], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def wait_ready(url: str, web: subprocess.Popen, logs: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while request(f"{url}/health/ready", timeout=5)[0] != 200:
        if web.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"fuzz: the service did not become ready\n{(logs / 'web.log').read_text()[-4000:]}")
        time.sleep(0.2)


def token(url: str, username: str, password: str) -> str:
    status, body = request(f"{url}/api/v1/auth/token/", {"username": username, "password": password})
    if status != 200:
        sys.exit(f"fuzz: no token for {username}: {status} {body[:500]!r}")
    return str(json.loads(body)["access"])


def schemathesis(url: str, access: str, role: str, reports: Path) -> int:
    argv = [
        str(BIN / "python"),
        "-c",
        "import tests.fuzz.compat; from schemathesis.cli import schemathesis; schemathesis()",
        "run",
        f"{url}/api/schema/",
        f"--base-url={url}",
        "--checks=all",  # with tests/fuzz/checks.py's positive_data_accepted
        "--data-generation-method=all",
        "--stateful=links",
        f"--hypothesis-max-examples={MAX_EXAMPLES}",
        "--hypothesis-deadline=none",
        "--hypothesis-database=none",
        "--hypothesis-suppress-health-check=all",
        f"--max-response-time={MAX_RESPONSE_MS}",
        "--request-timeout=10000",
        "--show-trace",
        f"--junit-xml={reports / f'{role}.xml'}",
        "--header",
        f"Authorization: Bearer {access}",
        "--no-color",
    ]
    if os.environ.get("FUZZ_SEED"):
        argv.append(f"--hypothesis-seed={os.environ['FUZZ_SEED']}")
    say(f"fuzz: schemathesis as {role} (at most {MAX_EXAMPLES} examples per operation, {RUN_BUDGET_SECONDS} s)")
    try:
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz.checks"}
        return subprocess.run(argv, cwd=ROOT, env=env, timeout=RUN_BUDGET_SECONDS, check=False).returncode  # noqa: S603
    except subprocess.TimeoutExpired:
        say(f"fuzz: the {role} run exceeded its budget of {RUN_BUDGET_SECONDS} s: counted as a failure")
        return 124


def _is_error(line: str) -> bool:
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and record.get("level") in {"error", "critical"}


def main() -> int:
    server = os.environ["DATABASE_URL"]
    work = Path(tempfile.mkdtemp(prefix="paysvc-fuzz-"))
    logs = work / "logs"
    logs.mkdir()
    (work / "metrics").mkdir()
    name = f"fuzz_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "HOME": os.environ.get("HOME", str(ROOT)),
        "LANG": "C.UTF-8",
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "ENCRYPTION_KEYS": base64.b64encode(secrets.token_bytes(32)).decode(),
        "BLIND_INDEX_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "DATABASE_URL": urlunsplit(urlsplit(server)._replace(path=f"/{name}")),
        "REDIS_URL": urlunsplit(urlsplit(os.environ["REDIS_URL"])._replace(path=f"/{REDIS_DB}")),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PAYMENTS_GATEWAY": "simulator",
        "STRIPE_WEBHOOK_SECRET": "whsec_fuzz_" + secrets.token_hex(16),  # as deployed: the fuzzer cannot sign
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "STATIC_ROOT": str(work / "static"),
        "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
        "GUNICORN_ACCESS_LOG": str(logs / "access.log"),
        "CELERY_WORKER_CONCURRENCY": "2",
        # the fuzzer's request rate is not under test: raise every limit for the run
        "RATELIMIT_READS": "1000000/m",
        "RATELIMIT_WRITES": "1000000/m",
        "RATELIMIT_TOKEN": "100000/m",
    }
    processes: list[subprocess.Popen] = []
    statuses: dict[str, int] = {}
    try:
        run([ENTRYPOINT, "collectstatic"], env)
        run([ENTRYPOINT, "migrate"], env)
        passwords = {}
        for role in ROLES:
            passwords[role] = secrets.token_urlsafe(24)
            run([ENTRYPOINT, "python", "manage.py", "create_api_client", f"fuzz-{role}", "--role", role,
                 f"--password={passwords[role]}"], env)  # fmt: skip
        processes.append(start("web", env, logs))
        processes.append(start("worker", env, logs))
        wait_ready(url, processes[0], logs)
        for role in ROLES:
            statuses[role] = schemathesis(url, token(url, f"fuzz-{role}", passwords[role]), role, work)
    finally:
        for process in processes:
            stop(process)
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    errors = [line for line in (logs / "web.log").read_text(errors="replace").splitlines() if _is_error(line)]
    say(f"fuzz: exit statuses {statuses}; {len(errors)} ERROR lines in the web log ({logs / 'web.log'})")
    for line in errors[:20]:
        say("  " + line[:600])
    if os.environ.get("FUZZ_KEEP") != "1":
        shutil.rmtree(work / "static", ignore_errors=True)
    clean = statuses and all(status == 0 for status in statuses.values()) and not errors
    say("fuzz: " + ("no findings" if clean else "FAILED: findings above (an ERROR line in the web log counts)"))
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
