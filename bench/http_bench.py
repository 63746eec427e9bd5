"""HTTP benchmark: gunicorn with production settings, a Celery worker, wrk; each endpoint against the floor.

Run with `make bench-http` (a throwaway PostgreSQL with fsync on, and Redis). It starts gunicorn
(`config.wsgi`, gthread, BENCH_WORKERS x BENCH_THREADS, DEBUG=false) and one Celery worker, then runs
`wrk -t2 -c8 -d BENCH_SECONDS` against a bare JWT-authenticated DRF view (the floor), the same view
with one INSERT, and each endpoint of the money path, each in rounds that alternate with rounds of the
floor (`BENCH_ROUNDS`, 3): the machine's speed drifts, so each ratio is to the floor run beside it. It
prints req/s, p50/p99, non-2xx responses, SQL statements and commits per request (measured in-process
on the same code), the Celery queue length after each run, each endpoint's throughput as a ratio to
that floor, and the CPU each request took in gunicorn, PostgreSQL, the worker, Redis and wrk. Then
create + confirm again with SIMULATOR_LATENCY_MS=300 (a real gateway's latency) at each thread count of
BENCH_LATENCY_THREADS (4,16,32,64), each thread warmed on create + confirm first, with CPU per request by
process and the cores busy (BENCH_TABLE=0: only those runs; BENCH_LATENCY=0: none). It prints figures; it
asserts nothing. Everything runs on this machine's cores.
"""

import base64
import json
import os
import re
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = ROOT / ".venv" / "bin"
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
HISTORY = int(os.environ.get("BENCH_HISTORY", "20000"))  # older payments of another shop: see seed_history
# Each scenario runs in ROUNDS rounds of SECONDS / ROUNDS, each after a round of the floor: on a shared
# machine the speed drifts (by half, within minutes, here), and a ratio is only fair to what ran beside it.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
ROUND_SECONDS = max(SECONDS // ROUNDS, 2)
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
THREADS = int(os.environ.get("BENCH_THREADS", "4"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "8"))
LATENCY_WARM_SECONDS = int(os.environ.get("BENCH_LATENCY_WARM_SECONDS", "8"))
SECRET = "whsec_bench"  # noqa: S105 - the throwaway endpoint secret of this run
ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "bench.settings",
    "DEBUG": "false",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "ENCRYPTION_KEYS": base64.b64encode(secrets.token_bytes(32)).decode(),
    "BLIND_INDEX_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
    "RATELIMIT_ENABLE": "false",  # the floor runs far above the 12,000 reads/min a client may make
    "STRIPE_WEBHOOK_SECRET": SECRET,
    "PAYMENTS_GATEWAY": "simulator",
    "LOG_LEVEL": "WARNING",
}
os.environ.update(ENV)

import django  # noqa: E402

django.setup()

import stripe  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from rest_framework_simplejwt.tokens import RefreshToken  # noqa: E402

from accounts.models import ApiRole, User  # noqa: E402
from config.celery import QUEUES  # noqa: E402
from payments.models import Payment  # noqa: E402
from payments.services import payment_create  # noqa: E402
from refunds.models import Refund  # noqa: E402


@dataclass
class Scenario:
    name: str
    method: str
    path: str
    lua: str  # a wrk script body (request function), or "" for a plain GET
    in_process: Callable[[Client, int], Any]  # one request through the Django test client, for statement counts


@dataclass
class Result:
    name: str
    rps: float
    p50: float
    p99: float
    non_2xx: int
    requests: int
    codes: dict[str, int]
    statements: float
    commits: float
    queue_after: int
    cpu: dict[str, float]  # CPU ms per request by process group (`cpu_by_group`)
    floor_rps: float  # the floor, measured in turn with this scenario (its rounds alternate with the floor's)
    floor_cpu: float  # CPU ms per request of that floor, all processes


# --- processes ------------------------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - our own loopback server
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def process(args: list[str], *, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("w") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # noqa: S603
        try:
            yield proc
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@contextmanager
def gunicorn(ports: list[int], *, threads: int, extra_env: dict[str, str], workdir: Path) -> Iterator[None]:
    """BENCH_WORKERS gthread workers of `threads` threads: one gunicorn master with one worker per port.

    wrk's keep-alive connections stay with the worker that accepted them, and the workers of one master
    accept them as they race for them: 8 connections split 4-4 in about a quarter of the runs, 6-2 or
    worse in a third, and a worker with 6 connections for 4 threads makes 2 wait (with a gateway's 300 ms,
    p50 went from 330 to 640 ms from one run to the next). One port per worker, each wrk thread on its own
    port (`_headers`), gives each worker the same connections, as a load balancer spreading them would.
    """
    with ExitStack() as stack:
        for port in ports:
            args = [str(BIN / "gunicorn"), "config.wsgi", "-k", "gthread", "-w", "1", "--threads", str(threads)]
            args += ["-b", f"127.0.0.1:{port}", "--access-logfile", "-", "--log-level", "warning"]
            stack.enter_context(process(args, env={**ENV, **extra_env}, log=workdir / f"gunicorn-{port}.log"))
        for port in ports:
            _wait_http(f"http://127.0.0.1:{port}/health/live")
        yield


def worker_ports() -> list[int]:
    """A free port for each gunicorn worker, all different."""
    ports: list[int] = []
    while len(ports) < WORKERS:
        if (port := _free_port()) not in ports:
            ports.append(port)
    return ports


def queue_length() -> int:
    import redis

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    return sum(int(client.llen(name)) for name in QUEUES)


# --- measuring ------------------------------------------------------------------------------------------
CPU_GROUPS = ("gunicorn", "postgres", "worker", "redis", "wrk")
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_by_group() -> dict[str, float]:
    """CPU seconds (user + system) used so far by this machine's processes, by group: gunicorn, PostgreSQL,
    the Celery worker, Redis (from /proc), and wrk (this process's finished children)."""
    totals = dict.fromkeys(CPU_GROUPS, 0.0)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            cmdline = Path(entry.path, "cmdline").read_bytes()
        except OSError:  # it ended meanwhile
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        if comm.startswith("postgres") or cmdline.startswith(b"postgres"):
            group = "postgres"
        elif comm.startswith("redis"):
            group = "redis"
        elif b"gunicorn" in cmdline:
            group = "gunicorn"
        elif b"celery" in cmdline:
            group = "worker"
        else:
            continue
        totals[group] += ticks / _TICK
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once it has exited
    totals["wrk"] = usage.ru_utime + usage.ru_stime
    return totals


def run_wrk(url: str, script: Path | None, *, seconds: int = SECONDS) -> dict[str, Any]:
    # One wrk thread per gunicorn worker, each on that worker's port (`_headers`): CONNECTIONS spread evenly.
    args = ["wrk", f"-t{WORKERS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if script:
        args += ["-s", str(script)]
    output = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout  # noqa: S603
    codes: dict[str, int] = {}
    for status, count in re.findall(r"status (\d+): (\d+)", output):
        codes[status] = codes.get(status, 0) + int(count)
    return {
        "codes": codes,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50": _ms(re.search(r"50%\s+([\d.]+\w+)", output).group(1)),  # type: ignore[union-attr]
        "p99": _ms(re.search(r"99%\s+([\d.]+\w+)", output).group(1)),  # type: ignore[union-attr]
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),  # type: ignore[union-attr]
        "non_2xx": int(match.group(1)) if (match := re.search(r"Non-2xx or 3xx responses: (\d+)", output)) else 0,
    }


def combined(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of several equal-length wrk runs as one: mean req/s, median p50, worst p99, summed counts."""
    codes: dict[str, int] = {}
    for figures in rounds:
        for status, count in figures["codes"].items():
            codes[status] = codes.get(status, 0) + count
    p50s = sorted(figures["p50"] for figures in rounds)
    return {
        "codes": codes,
        "rps": sum(figures["rps"] for figures in rounds) / len(rounds),
        "p50": p50s[len(p50s) // 2],
        "p99": max(figures["p99"] for figures in rounds),
        "requests": sum(figures["requests"] for figures in rounds),
        "non_2xx": sum(figures["non_2xx"] for figures in rounds),
    }


def warm_up(url: str, workdir: Path, auth: str, ports: list[int]) -> None:
    """Run the floor, unmeasured, until two rounds in a row agree within 10%: a fresh gunicorn is cold (imports,
    each thread's first connection) and the worker starting beside it takes the same cores for a few seconds."""
    script = workdir / "warm.lua"
    script.write_text(_headers(auth, ports))
    last = 0.0
    for _round in range(10):
        rps = run_wrk(url, script, seconds=2)["rps"]
        if last and abs(rps - last) <= 0.1 * last:
            return
        last = rps


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def count_in_process(request: Callable[[Client, int], Any], client: Client, samples: int = 10) -> tuple[float, float]:
    """SQL statements and commits per request: explicit commits, plus writes made in autocommit."""
    counts = {"statements": 0, "commits": 0}

    def wrapper(execute: Callable, sql: str, params: Any, many: bool, context: Any) -> Any:
        counts["statements"] += 1
        if not connection.in_atomic_block and sql.lstrip().split(" ", 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            counts["commits"] += 1
        return execute(sql, params, many, context)

    real_commit = connection.commit

    def commit() -> None:
        counts["commits"] += 1
        real_commit()

    connection.commit = commit  # type: ignore[method-assign]
    try:
        with connection.execute_wrapper(wrapper):
            for i in range(samples):
                request(client, 10_000_000 + i)
    finally:
        connection.commit = real_commit  # type: ignore[method-assign]
    return counts["statements"] / samples, counts["commits"] / samples


# --- data -----------------------------------------------------------------------------------------------
def lua_list(values: list[str]) -> str:
    return "{" + ",".join(json.dumps(value) for value in values) + "}"


def signed_webhooks(references: list[str], count: int) -> list[tuple[str, str]]:
    now = int(time.time())
    bodies = []
    for n in range(count):
        event = {
            "id": f"evt_bench_{n}_{secrets.token_hex(4)}",
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": now,
            # The intent as Stripe sends it (the seeded payments succeeded): processed as stale, nothing to change.
            "data": {
                "object": {
                    "id": references[n % len(references)],
                    "object": "payment_intent",
                    "amount": 200_000,
                    "currency": "usd",
                    "status": "succeeded",
                    "amount_received": 200_000,
                    "amount_capturable": 0,
                    "capture_method": "automatic",
                    "created": now,
                    "metadata": {},
                }
            },
        }
        body = json.dumps(event, separators=(",", ":"))
        bodies.append((body, stripe.WebhookSignature.generate_signature_header(body, SECRET, timestamp=now)))
    return bodies


def seed_history(seeded: list[Any], count: int) -> None:
    """`count` older payments of another shop, each with a refund: tables of a shop that has been trading.

    The plans PostgreSQL caches for a connection (a prepared statement's generic plan, a foreign key's check)
    are made from the table's size when first run: on the 150 seeded rows a sequential scan is the cheapest,
    and a gunicorn worker's persistent connection keeps that plan while the run adds thousands of rows, until
    autovacuum's ANALYZE (a minute or more) makes it plan again. A shop's tables are not that small; these
    rows (copies of the seeded ones, by SQL) make the plans the ones a trading shop's database gets.
    """
    if count <= 0:
        return
    other, _ = User.objects.get_or_create(username="bench-http-history", defaults={"api_role": ApiRole.STOREFRONT})
    template = seeded[0]
    payment_columns = [f.column for f in Payment._meta.concrete_fields if f.column != "id"]
    fresh = {
        "public_id": "'pay_hist_' || n",
        "client_id": str(other.pk),
        "idempotency_key": "''",
        "customer_id": "'cus_hist_' || (n %% 5000)",
        "gateway_reference": "'pi_hist_' || n",
        "client_secret": "''",
        "created_at": "now() - (n || ' minutes')::interval",
        "updated_at": "now() - (n || ' minutes')::interval",
    }
    refund_columns = [f.column for f in Refund._meta.concrete_fields if f.column != "id"]
    refund_fresh = {
        "public_id": "'re_hist_' || p.id",
        "payment_id": "p.id",
        "gateway_reference": "'re_hist_' || p.id",
        "idempotency_key": "''",
        "amount": "1",
        "status": "'succeeded'",
        "created_at": "p.created_at",
        "updated_at": "p.created_at",
    }
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO payments_payment ({', '.join(payment_columns)}) "  # noqa: S608 - the model's columns
            f"SELECT {', '.join(fresh.get(c, c) for c in payment_columns)} "
            "FROM payments_payment, generate_series(1, %s) AS n WHERE payments_payment.id = %s",
            [count, template.pk],
        )
        first = Payment.objects.filter(client=other).order_by("pk").first()
        assert first is not None
        template_refund = Refund.objects.create(  # a row to copy (history: no event, no gateway call)
            payment=first, amount=1, currency=first.currency, status="succeeded", gateway_reference="re_hist_first"
        )
        cursor.execute(
            f"INSERT INTO refunds_refund ({', '.join(refund_columns)}) "  # noqa: S608 - the model's columns
            f"SELECT {', '.join(refund_fresh.get(c, 'r.' + c) for c in refund_columns)} "
            "FROM refunds_refund r, payments_payment p WHERE r.id = %s AND p.client_id = %s AND p.id <> %s",
            [template_refund.pk, other.pk, first.pk],
        )
    print(f"seeded a history of {count} payments and {count} refunds (another shop's)", flush=True)


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="http-bench-"))
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, created_at timestamptz)")
    shop, _ = User.objects.get_or_create(username="bench-http-shop", defaults={"api_role": ApiRole.STOREFRONT})
    token = str(RefreshToken.for_user(shop).access_token)
    auth = f"Bearer {token}"
    print("seeding payments ...", flush=True)
    seeded = [
        payment_create(
            client=shop,
            amount=200_000,  # under the review and first-seen thresholds: captured at once
            currency="usd",
            customer_id=f"cus_seed_{n}",
            payment_method="pm_card_visa",
            confirm=True,
            capture_method="automatic",
        )
        for n in range(150)
    ]
    seed_history(seeded, HISTORY)
    with connection.cursor() as cursor:
        # A shop's tables have planner statistics (autovacuum's ANALYZE); a new database has none until its
        # first autovacuum round, and a plan made without them (an index scan on a common status) would be timed.
        cursor.execute("ANALYZE")
    one = seeded[0].public_id
    refundable = [p.public_id for p in seeded[50:]]
    references = [p.gateway_reference or "" for p in seeded]
    hooks = signed_webhooks(references, 20_000)
    test_client = Client(HTTP_AUTHORIZATION=auth)

    def create_body(n: int, confirm: bool) -> str:
        body: dict[str, Any] = {"amount": 2000, "currency": "usd", "customer_id": f"cus_{n}"}
        if confirm:
            body |= {"payment_method": "pm_card_visa", "confirm": True}
        return json.dumps(body)

    def post(path: str, body: str, **headers: str) -> Any:
        return lambda c, n: c.post(path, body, content_type="application/json", **headers)

    lua_create = """
counter = 0
request = function()
  counter = counter + 1
  local key = prefix .. "n" .. counter
  local body = '{"amount":2000,"currency":"usd","customer_id":"cus_' .. key .. '"%s}'
  wrk.headers["Idempotency-Key"] = key
  return wrk.format("POST", "/api/v1/payments/", nil, body)
end
"""
    scenarios = [
        Scenario("floor: bare DRF view (JWT)", "GET", "/bench/floor/", "", lambda c, n: c.get("/bench/floor/")),
        Scenario(
            "floor + one INSERT",
            "POST",
            "/bench/insert/",
            'request = function() return wrk.format("POST", "/bench/insert/", nil, "{}") end',
            post("/bench/insert/", "{}"),
        ),
        Scenario(
            "GET /payments/{id}/", "GET", f"/api/v1/payments/{one}/", "", lambda c, n: c.get(f"/api/v1/payments/{one}/")
        ),
        Scenario(
            "GET /payments/?page_size=100",
            "GET",
            "/api/v1/payments/?page_size=100",
            "",
            lambda c, n: c.get("/api/v1/payments/?page_size=100"),
        ),
        Scenario(
            "GET /events/?page_size=100",
            "GET",
            "/api/v1/events/?page_size=100",
            "",
            lambda c, n: c.get("/api/v1/events/?page_size=100"),
        ),
        Scenario(
            "POST /payments/ create + confirm",
            "POST",
            "/api/v1/payments/",
            lua_create % ',"payment_method":"pm_card_visa","confirm":true',
            lambda c, n: c.post(
                "/api/v1/payments/",
                create_body(n, True),
                content_type="application/json",
                HTTP_IDEMPOTENCY_KEY=f"inproc-cc-{n}-{time.time()}",
            ),
        ),
        Scenario(
            "POST /payments/ create only",
            "POST",
            "/api/v1/payments/",
            lua_create % "",
            lambda c, n: c.post(
                "/api/v1/payments/",
                create_body(n, False),
                content_type="application/json",
                HTTP_IDEMPOTENCY_KEY=f"inproc-c-{n}-{time.time()}",
            ),
        ),
        Scenario(
            "POST /payments/{id}/refunds/",
            "POST",
            "/api/v1/payments/",
            f"""
counter = 0
ids = {lua_list(refundable)}
request = function()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = prefix .. "r" .. counter
  return wrk.format("POST", "/api/v1/payments/" .. ids[(counter % #ids) + 1] .. "/refunds/", nil, '{{"amount":1}}')
end
""",
            lambda c, n: c.post(
                f"/api/v1/payments/{refundable[n % len(refundable)]}/refunds/",
                '{"amount": 1}',
                content_type="application/json",
                HTTP_IDEMPOTENCY_KEY=f"inproc-r-{n}-{time.time()}",
            ),
        ),
        Scenario(
            "POST /webhooks/stripe/ (signed)",
            "POST",
            "/api/v1/webhooks/stripe/",
            f"""
counter = 0
bodies = {lua_list([body for body, _ in hooks])}
sigs = {lua_list([sig for _, sig in hooks])}
wrk.headers["Authorization"] = nil
request = function()
  counter = counter + 1
  local i = (counter % #bodies) + 1
  wrk.headers["Stripe-Signature"] = sigs[i]
  return wrk.format("POST", "/api/v1/webhooks/stripe/", nil, bodies[i])
end
""",
            lambda c, n: c.post(
                "/api/v1/webhooks/stripe/",
                hooks[-(n % 1000) - 1][0],
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=hooks[-(n % 1000) - 1][1],
            ),
        ),
    ]

    all_scenarios = scenarios
    only = [part for part in os.environ.get("BENCH_ONLY", "").split(",") if part]
    if only:  # the floor always runs: every figure is quoted against it
        scenarios = [s for i, s in enumerate(scenarios) if i == 0 or any(part in s.name for part in only)]
    ports = worker_ports()
    port = ports[0]
    results: list[Result] = []
    worker_args = [str(BIN / "celery"), "-A", "config", "worker", "-l", "WARNING", "-P", "threads", "-c", "4"]
    worker_args += ["-Q", ",".join(QUEUES), "--without-mingle", "--without-gossip", "--without-heartbeat"]
    create_confirm = next(s for s in all_scenarios if s.name.startswith("POST /payments/ create + confirm"))
    if os.environ.get("BENCH_TABLE", "1") == "0":  # only the runs with a gateway's latency
        latency_runs(create_confirm, workdir=workdir, auth=auth, worker_args=worker_args)
        return
    print(
        f"gunicorn {WORKERS}x{THREADS} gthread (a port each), wrk -t{WORKERS} -c{CONNECTIONS} -d{SECONDS}s, "
        f"CONN_MAX_AGE={settings.DATABASES['default'].get('CONN_MAX_AGE')}, "
        f"pool={settings.DATABASES['default'].get('OPTIONS', {}).get('pool', False)}, fsync on, simulator gateway",
        flush=True,
    )
    with (
        process(worker_args, env=ENV, log=workdir / "worker.log"),
        gunicorn(ports, threads=THREADS, extra_env={}, workdir=workdir),
    ):
        floor_url = f"http://127.0.0.1:{port}/bench/floor/"
        warm_up(floor_url, workdir, auth, ports)
        floor_script = workdir / "floor.lua"
        floor_script.write_text(_headers(auth, ports))
        floor_rounds: list[dict[str, Any]] = []
        floor_cpu = dict.fromkeys(CPU_GROUPS, 0.0)
        measured: list[tuple[Scenario, list[dict[str, Any]], list[dict[str, Any]], dict[str, float], float]] = []
        for scenario in scenarios[1:]:
            script = workdir / "scenario.lua"
            script.write_text(_headers(auth, ports) + scenario.lua)
            rounds: list[dict[str, Any]] = []
            beside: list[dict[str, Any]] = []
            cpu_seconds = dict.fromkeys(CPU_GROUPS, 0.0)
            beside_cpu = 0.0
            for _round in range(ROUNDS):  # the floor and the scenario in turn: both see the same machine
                before = cpu_by_group()
                beside.append(run_wrk(floor_url, floor_script, seconds=ROUND_SECONDS))
                between = cpu_by_group()
                rounds.append(run_wrk(f"http://127.0.0.1:{port}{scenario.path}", script, seconds=ROUND_SECONDS))
                after = cpu_by_group()
                for group in CPU_GROUPS:
                    floor_cpu[group] += between[group] - before[group]
                    cpu_seconds[group] += after[group] - between[group]
                    beside_cpu += between[group] - before[group]
            floor_rounds += beside
            measured.append((scenario, rounds, beside, cpu_seconds, beside_cpu))
            rps, floor_rps = combined(rounds)["rps"], combined(beside)["rps"]
            print(f"  {scenario.name}: {rps:.1f} req/s (the floor beside it {floor_rps:.1f})", flush=True)
        floor = combined(floor_rounds)
        results.append(
            Result(
                scenarios[0].name,
                statements=count_in_process(scenarios[0].in_process, test_client)[0],
                commits=0.0,
                queue_after=queue_length(),
                cpu={group: seconds * 1000 / max(floor["requests"], 1) for group, seconds in floor_cpu.items()},
                floor_rps=floor["rps"],
                floor_cpu=sum(floor_cpu.values()) * 1000 / max(floor["requests"], 1),
                **floor,
            )
        )
        for scenario, rounds, beside, cpu_seconds, beside_cpu in measured:
            figures = combined(rounds)
            statements, commits = count_in_process(scenario.in_process, test_client)
            results.append(
                Result(
                    scenario.name,
                    statements=statements,
                    commits=commits,
                    queue_after=queue_length(),
                    cpu={group: seconds * 1000 / max(figures["requests"], 1) for group, seconds in cpu_seconds.items()},
                    floor_rps=combined(beside)["rps"],
                    floor_cpu=beside_cpu * 1000 / max(combined(beside)["requests"], 1),
                    **figures,
                )
            )
        print_table(results)

    if os.environ.get("BENCH_LATENCY", "1") != "0":
        latency_runs(create_confirm, workdir=workdir, auth=auth, worker_args=worker_args)
    print(f"\nlogs (gunicorn access and errors, worker): {workdir}")


def latency_runs(create_confirm: Scenario, *, workdir: Path, auth: str, worker_args: list[str]) -> None:
    """create + confirm with SIMULATOR_LATENCY_MS=300 at each thread count of BENCH_LATENCY_THREADS."""
    global CONNECTIONS
    print(f"\ncreate + confirm with SIMULATOR_LATENCY_MS=300 (gunicorn {WORKERS} workers):")
    print(
        "| threads per worker | req/s | p50 ms | p99 ms | non-2xx | CPU ms/request "
        "| of it: gunicorn / postgres / worker / redis | cores busy |"
    )
    print("|---|---|---|---|---|---|---|---|")
    script = workdir / "latency.lua"
    for threads in [int(n) for n in os.environ.get("BENCH_LATENCY_THREADS", "4,16,32,64").split(",")]:
        CONNECTIONS = WORKERS * threads
        ports = worker_ports()
        port = ports[0]
        script.write_text(_headers(auth, ports) + create_confirm.lua)
        latency_env = {"SIMULATOR_LATENCY_MS": "300"}
        with (
            process(worker_args, env={**ENV, **latency_env}, log=workdir / f"worker-{threads}.log"),
            gunicorn(ports, threads=threads, extra_env=latency_env, workdir=workdir),
        ):
            warm_up(f"http://127.0.0.1:{port}/bench/floor/", workdir, auth, ports)  # every thread's first connection
            # Unmeasured, the scenario itself: each thread's connection has its statements prepared (psycopg
            # prepares one after its fifth run) and each new PostgreSQL backend its caches filled.
            run_wrk(f"http://127.0.0.1:{port}/api/v1/payments/", script, seconds=LATENCY_WARM_SECONDS)
            before, started = cpu_by_group(), time.monotonic()
            figures = run_wrk(f"http://127.0.0.1:{port}/api/v1/payments/", script)
            after, elapsed = cpu_by_group(), time.monotonic() - started
        used = {group: after[group] - before[group] for group in CPU_GROUPS}
        per_request = sum(used.values()) * 1000 / max(figures["requests"], 1)
        parts = " / ".join(f"{used[group] * 1000 / max(figures['requests'], 1):.1f}" for group in CPU_GROUPS[:4])
        print(
            f"| {threads} | {figures['rps']:.1f} | {figures['p50']:.0f} | {figures['p99']:.0f} | {figures['non_2xx']} "
            f"| {per_request:.1f} | {parts} | {sum(used.values()) / elapsed:.2f} |",
            flush=True,
        )


def _headers(auth: str, ports: list[int]) -> str:
    """Auth and JSON headers, a `prefix` unique to each wrk thread and run (for Idempotency-Keys), and each
    wrk thread's connections on one gunicorn worker's port, in turn (`gunicorn`)."""
    return (
        f'wrk.headers["Authorization"] = "{auth}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        "local made = 0\n"
        "local threads = {}\n"
        f"local ports = {{{', '.join(f'{chr(34)}{port}{chr(34)}' for port in ports)}}}\n"
        "setup = function(thread)\n"
        '  made = made + 1; thread:set("tid", made); table.insert(threads, thread)\n'
        '  thread.addr = wrk.lookup("127.0.0.1", ports[((made - 1) % #ports) + 1])[1]\n'
        "end\n"
        # letters between the numbers: digit runs joined by dashes would look like a card number (and be refused)
        'init = function(args) prefix = "t" .. tostring(tid) .. "s" .. tostring(os.time()); codes = {} end\n'
        "response = function(status, headers, body)\n"
        "  if status >= 300 then codes[status] = (codes[status] or 0) + 1 end\n"
        "end\n"
        "done = function(summary, latency, requests)\n"
        "  for _, thread in ipairs(threads) do\n"
        '    for status, count in pairs(thread:get("codes")) do print("status " .. status .. ": " .. count) end\n'
        "  end\n"
        "end\n"
    )


def _non_2xx(result: Result) -> str:
    detail = ", ".join(f"{count}x{status}" for status, count in sorted(result.codes.items()))
    return f"{result.non_2xx} ({detail})" if detail else str(result.non_2xx)


def print_table(results: list[Result]) -> None:
    print(
        "\n| request | req/s | p50 / p99 ms | non-2xx | SQL statements | commits | queue after "
        "| floor beside it, req/s | vs floor |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r.name} | {r.rps:.1f} | {r.p50:.0f} / {r.p99:.0f} | {_non_2xx(r)} of {r.requests} | "
            f"{r.statements:.1f} | {r.commits:.1f} | {r.queue_after} | {r.floor_rps:.1f} | {r.rps / r.floor_rps:.3f} |"
        )
    print("\nCPU ms per request, by process (user + system, during the same runs), and the floor's beside it:")
    print(f"| request | {' | '.join(CPU_GROUPS)} | total | the floor's | vs floor (CPU) |")
    print(f"|---|{'---|' * (len(CPU_GROUPS) + 3)}")
    for r in results:
        cells = " | ".join(f"{r.cpu[group]:.2f}" for group in CPU_GROUPS)
        total = sum(r.cpu.values())
        print(f"| {r.name} | {cells} | {total:.2f} | {r.floor_cpu:.2f} | {r.floor_cpu / total:.3f} |")


if __name__ == "__main__":
    main()
