"""The chaos suite (`make chaos`): faults injected under load, then the money invariants checked.

It starts everything itself, on loopback ports of its own, in a temporary directory: PostgreSQL
(`initdb`, `pg_ctl`), Redis (append-only file on, so a stopped Redis comes back with its queues and
the simulator's state), gunicorn (`-c config/gunicorn.conf.py`, 2 workers x 4 threads, DEBUG=false,
static files collected into the directory), one Celery worker and beat, on the simulator gateway
(`SIMULATOR_LATENCY_MS`) with the sweepers of bench/chaos_settings.py (every CHAOS_SWEEP_SECONDS).

A few client threads run a bounded load, each scenario a storefront's: create with `confirm: true`
(automatic and manual capture, some declined), create then confirm, create then confirm on the
customer's side (at the simulator, as Stripe.js would) followed by a signed `payment_intent.succeeded`
webhook delivered twice; captures; refunds; reads (a payment, the list, the event feed). A client
retries a 5xx or a timeout with the same Idempotency-Key, as the contract asks. Meanwhile the faults
run in turn: `kill -9` the Celery worker (restarted after CHAOS_WORKER_DOWN_SECONDS), `kill -9` one
gunicorn worker (the master forks another), `pg_ctl restart -m fast`, Redis stopped for
CHAOS_REDIS_SECONDS (then started on the same port), Redis frozen (SIGSTOP) as long (then SIGCONT).
After each fault a probe (a create, then a refund a worker must submit) measures the time to recover.

Every answer is recorded under the fault running when its request started. During a fault the API
must answer within the clients' timeout (CHAOS_CLIENT_TIMEOUT, 10 s) with a 2xx, a 4xx or a 502/503
JSON envelope (never a 500, a non-JSON body or no answer), and reads must keep working through the
Redis faults. A killed gunicorn worker drops the connections it held: those resets are counted apart
and allowed in that fault only. Afterwards, within CHAOS_SETTLE_SECONDS (polling), every payment and
refund must be settled, no payment charged twice at the gateway, refunds add up, every event
published and every webhook applied once. Prints the tables; exits 1 if any invariant fails.

Run: `make chaos` (or `.venv/bin/python bench/chaos.py`; CHAOS_KEEP=1 keeps the directory and logs).
"""

import base64
import contextlib
import itertools
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = ROOT / ".venv" / "bin"

CLIENT_THREADS = int(os.environ.get("CHAOS_CLIENTS", "4"))
CLIENT_TIMEOUT = float(os.environ.get("CHAOS_CLIENT_TIMEOUT", "10"))
FAULT_SECONDS = float(os.environ.get("CHAOS_REDIS_SECONDS", "20"))
WORKER_DOWN_SECONDS = float(os.environ.get("CHAOS_WORKER_DOWN_SECONDS", "10"))
STEADY_SECONDS = float(os.environ.get("CHAOS_STEADY_SECONDS", "8"))
RECOVER_SECONDS = float(os.environ.get("CHAOS_RECOVER_SECONDS", "120"))
SETTLE_SECONDS = float(os.environ.get("CHAOS_SETTLE_SECONDS", "120"))
KEEP = os.environ.get("CHAOS_KEEP", "") == "1"
WEBHOOK_SECRET = "whsec_chaos_" + secrets.token_hex(16)
PASSWORD = secrets.token_urlsafe(24)
QUEUES = "default,gateway,webhooks,events"  # config/celery.py QUEUES


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log(message: str) -> None:
    print(f"chaos {time.strftime('%H:%M:%S')} {message}", flush=True)


def wait_for(check: Callable[[], bool], *, seconds: float, what: str, interval: float = 0.2) -> float:
    """Poll `check` until true; returns the seconds it took; raises after `seconds`."""
    start = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - start
        except Exception:  # noqa: BLE001, S110 - not up yet
            pass
        if time.monotonic() - start > seconds:
            raise RuntimeError(f"{what} not within {seconds:.0f} s")
        time.sleep(interval)


# --- the processes ---------------------------------------------------------------------------------------
WORK = Path(tempfile.mkdtemp(prefix="paysvc-chaos."))
PG_PORT, REDIS_PORT, WEB_PORT = free_port(), free_port(), free_port()
BASE = f"http://127.0.0.1:{WEB_PORT}"
IS_ROOT = os.geteuid() == 0


def pg_bin() -> Path:
    found = shutil.which("pg_config")
    if found:
        found_dir = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=True)  # noqa: S603
        bindir = Path(found_dir.stdout.strip())
        if (bindir / "initdb").exists():
            return bindir
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not candidates:
        sys.exit("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    return candidates[-1]


def as_pg(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if IS_ROOT else args


class Postgres:
    def __init__(self) -> None:
        self.bin = pg_bin()
        self.data = WORK / "pg"
        self.options = (
            f"-c listen_addresses=127.0.0.1 -p {PG_PORT} -k {WORK} -c max_connections=200 "
            "-c fsync=off -c full_page_writes=off"  # a throwaway cluster; synchronous commit stays on
        )

    def _ctl(self, *args: str) -> None:
        subprocess.run(  # noqa: S603 - our own cluster
            as_pg([str(self.bin / "pg_ctl"), "-D", str(self.data), *args]),
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=120,
        )

    def start(self) -> None:
        if IS_ROOT:
            shutil.chown(WORK, "postgres")
        subprocess.run(  # noqa: S603
            as_pg([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
            + ["--locale=C.UTF-8", "--no-sync"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self._ctl("-l", str(WORK / "pg.log"), "-w", "start", "-o", self.options)

    def restart(self) -> None:
        self._ctl("-l", str(WORK / "pg.log"), "-m", "fast", "-w", "restart", "-o", self.options)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._ctl("-m", "immediate", "-w", "stop")


class Redis:
    """redis-server with its append-only file in WORK: stopped (SIGTERM, it saves) and started on the same port."""

    def __init__(self) -> None:
        self.popen: subprocess.Popen | None = None

    def start(self) -> None:
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(REDIS_PORT), "--dir", str(WORK)]
        args += ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        with (WORK / "redis.log").open("a") as out:
            self.popen = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # noqa: S603
        wait_for(self.ping, seconds=30, what="Redis answering")

    def ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGCONT)  # should it be frozen
            self.popen.terminate()
            self.popen.wait(timeout=30)

    def signal(self, sig: int) -> None:
        assert self.popen is not None
        self.popen.send_signal(sig)


@dataclass
class Service:
    name: str
    args: list[str]
    popen: subprocess.Popen | None = None
    supervised: bool = True  # restarted by the supervisor when it exits by itself (not while a fault holds it down)

    def start(self, env: dict[str, str]) -> None:
        with (WORK / f"{self.name}.log").open("a") as out:
            self.popen = subprocess.Popen(  # noqa: S603 - our own commands
                self.args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """The whole process group: the main process and its children (a worker's pool, gunicorn's workers)."""
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout=25)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)

    def children(self) -> list[int]:
        """The live child processes of the main one (gunicorn's workers), from /proc."""
        assert self.popen is not None
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, ...
            except OSError:
                continue  # gone meanwhile
            if int(fields[1]) == self.popen.pid and fields[0] != "Z":
                found.append(int(stat.parent.name))
        return found

    def log_tail(self, lines: int = 25) -> str:
        text = (WORK / f"{self.name}.log").read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


class Supervisor(threading.Thread):
    """Start again a web, worker or beat process that exited by itself, as compose's `restart: unless-stopped` does.

    Each such exit is recorded: the suite fails on it (a process should ride out a fault, not die of it).
    """

    def __init__(self, services: list[Service]) -> None:
        super().__init__(name="supervisor", daemon=True)
        self.services, self.exits, self.halt, self.lock = services, [], threading.Event(), threading.Lock()

    def run(self) -> None:
        while not self.halt.wait(1.0):
            with self.lock:
                for service in self.services:
                    if service.supervised and service.popen is not None and service.popen.poll() is not None:
                        self.exits.append(
                            f"{service.name} exited {service.popen.returncode} during {RECORDER.current()}"
                        )
                        log(f"supervisor: {self.exits[-1]}; starting it again")
                        service.start(ENV)


ENV = {
    **os.environ,
    "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    "DJANGO_SETTINGS_MODULE": "bench.chaos_settings",
    "DEBUG": "false",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "ENCRYPTION_KEYS": base64.b64encode(secrets.token_bytes(32)).decode(),
    "BLIND_INDEX_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:{PG_PORT}/postgres",
    "REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
    "PAYMENTS_GATEWAY": "simulator",
    "SIMULATOR_LATENCY_MS": os.environ.get("SIMULATOR_LATENCY_MS", "20"),
    "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "STATIC_ROOT": str(WORK / "static"),
    "HOST": "127.0.0.1",
    "PORT": str(WEB_PORT),
    "WEB_CONCURRENCY": "2",
    "GUNICORN_THREADS": "4",
    "GUNICORN_ACCESS_LOG": str(WORK / "access.log"),
    "LOG_LEVEL": os.environ.get("CHAOS_LOG_LEVEL", "WARNING"),
    "CHAOS_SWEEP_SECONDS": os.environ.get("CHAOS_SWEEP_SECONDS", "5"),
    # Stuck after 15 s (production: 300) and short backoffs, so that everything settles within the bound.
    "PAYMENTS_STUCK_AFTER_SECONDS": os.environ.get("PAYMENTS_STUCK_AFTER_SECONDS", "15"),
    "REFUNDS_STUCK_AFTER_SECONDS": os.environ.get("REFUNDS_STUCK_AFTER_SECONDS", "15"),
    "PAYMENTS_RETRY_BASE_SECONDS": "0.5",
    "PAYMENTS_RETRY_MAX_SECONDS": "5",
    "REFUNDS_RETRY_BASE_SECONDS": "0.5",
    "REFUNDS_RETRY_MAX_SECONDS": "5",
    "WEBHOOKS_RETRY_BASE_SECONDS": "0.5",
    "WEBHOOKS_RETRY_MAX_SECONDS": "5",
    # Retries that outlast the longest fault, as production's do (backoff capped at 600 s): with 5 s caps the
    # default counts (6-8) give up within ~20 s, and the simulator keeps its state in Redis, so a Redis fault
    # is a gateway outage here too. 16 retries at these caps span ~68 s.
    "PAYMENTS_SETTLE_MAX_RETRIES": "16",
    "REFUNDS_SUBMIT_MAX_RETRIES": "16",
    "WEBHOOKS_PROCESS_MAX_RETRIES": "16",
    # The webhook recovery task (re-enqueues events left `received`) every 5 s, for rows older than 15 s.
    "WEBHOOKS_RECOVERY_INTERVAL_SECONDS": "5",
    "WEBHOOKS_RECOVERY_STUCK_SECONDS": "15",
}
for name in ("PROMETHEUS_MULTIPROC_DIR", "OTEL_EXPORTER_OTLP_ENDPOINT", "CELERY_BROKER_URL", "EVENTS_BROKER_URL"):
    ENV.pop(name, None)
os.environ.update(ENV)

WEB = Service("gunicorn", [str(BIN / "gunicorn"), "-c", "config/gunicorn.conf.py"])
WORKER = Service(
    "worker", [str(BIN / "celery"), "-A", "config", "worker", "-l", "WARNING", "-Q", QUEUES, "-n", "chaos@%h"]
)
BEAT = Service("beat", [str(BIN / "celery"), "-A", "config", "beat", "-l", "WARNING", "-s", str(WORK / "beat")])
SUPERVISOR = Supervisor([WEB, WORKER, BEAT])


def manage(*args: str) -> None:
    result = subprocess.run(  # noqa: S603 - our own manage.py
        [str(BIN / "python"), "manage.py", *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}{result.stderr}")


# --- what the clients saw --------------------------------------------------------------------------------
@dataclass
class Record:
    outcomes: Counter = field(default_factory=Counter)  # category -> count
    reads: Counter = field(default_factory=Counter)  # "ok" / "not_ok"
    max_latency: float = 0.0
    slowest: str = ""
    examples: list[str] = field(default_factory=list)


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.phase = "startup"
        self.phases: dict[str, Record] = defaultdict(Record)

    def set_phase(self, phase: str) -> None:
        with self.lock:
            self.phase = phase

    def current(self) -> str:
        with self.lock:
            return self.phase

    def add(self, phase: str, category: str, *, read: bool, latency: float, example: str = "", what: str = "") -> None:
        """Count an answer under `phase` (the one when its request started), or the fault that began meanwhile."""
        with self.lock:
            if self.phase in FAULT_NAMES and phase != self.phase:
                phase = self.phase
            record = self.phases[phase]
            record.outcomes[category] += 1
            if latency > record.max_latency:
                record.max_latency, record.slowest = latency, f"{what} {category}"
            if read:
                record.reads["ok" if category == "2xx" else "not_ok"] += 1
            if example and len(record.examples) < 4:
                record.examples.append(example)


RECORDER = Recorder()
FAULT_NAMES = {"worker_kill", "gunicorn_worker_kill", "postgres_restart", "redis_stop", "redis_freeze"}
ACCEPTABLE = {"2xx", "4xx", "502", "503"}
STOP = threading.Event()


@dataclass
class Answer:
    status: int  # 0: no answer
    body: Any
    category: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def classify(status: int, content_type: str, body: Any) -> str:
    if 200 <= status < 300:
        return "2xx"
    envelope = (
        "application/json" in content_type
        and isinstance(body, dict)
        and isinstance(body.get("error"), dict)
        and {"type", "code", "message"} <= set(body["error"])
    )
    if not envelope:
        return f"{status} (no JSON envelope)"
    if status in (502, 503):
        return str(status)
    if 400 <= status < 500:
        return "4xx"
    return str(status)


def request(
    session: Any, method: str, path: str, *, token: str = "", body: Any = None, key: str = "", raw: str = "", **hdr: str
) -> Answer:
    import requests

    headers = {"X-Forwarded-Proto": "https", **hdr}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if key:
        headers["Idempotency-Key"] = key
    phase, start = RECORDER.current(), time.monotonic()
    read = method == "GET"
    try:
        if raw:
            headers["Content-Type"] = "application/json"
            response = session.request(method, BASE + path, data=raw.encode(), headers=headers, timeout=CLIENT_TIMEOUT)
        else:
            response = session.request(method, BASE + path, json=body, headers=headers, timeout=CLIENT_TIMEOUT)
    except requests.Timeout:
        RECORDER.add(phase, "timeout", read=read, latency=time.monotonic() - start, example=f"{method} {path}")
        return Answer(0, None, "timeout")
    except requests.ConnectionError as exc:
        category = "reset" if "refused" not in str(exc).lower() else "refused"
        RECORDER.add(phase, category, read=read, latency=time.monotonic() - start, example=f"{method} {path}")
        session.close()  # a dropped keep-alive connection: start afresh
        return Answer(0, None, category)
    latency = time.monotonic() - start
    try:
        data = response.json()
    except ValueError:
        data = None
    category = classify(response.status_code, response.headers.get("Content-Type", ""), data)
    example = "" if category in ACCEPTABLE else f"{method} {path} -> {response.status_code} {response.text[:160]!r}"
    if category == "503" and "Retry-After" not in response.headers:
        example = f"{method} {path} -> 503 without Retry-After"
    what = f"{method} {path.split('?')[0]}"
    RECORDER.add(phase, category, read=read, latency=latency, example=example, what=what)
    return Answer(response.status_code, data, category)


def token_for(username: str) -> str:
    import requests

    with requests.Session() as session:
        answer = request(session, "POST", "/api/v1/auth/token/", body={"username": username, "password": PASSWORD})
    if not answer.ok:
        raise RuntimeError(f"no token for {username}: {answer.status} {answer.body}")
    return str(answer.body["access"])


# --- the load --------------------------------------------------------------------------------------------
KINDS = ("auto_confirm", "manual_confirm", "confirm_later", "webhook_confirm", "auto_confirm", "decline")
SENT_WEBHOOKS: set[str] = set()
SENT_LOCK = threading.Lock()
_numbers = itertools.count(1)


def pause(seconds: float) -> bool:
    """A client's pause between retries; False once the load is stopping."""
    return not STOP.wait(seconds)


class Shop:
    """One client thread: scenarios one after another until told to stop."""

    def __init__(self, token: str, name: str) -> None:
        import requests

        self.token, self.name = token, name
        self.session = requests.Session()
        self.random = random.Random(name)  # noqa: S311 - load shapes, not secrets

    def call(self, method: str, path: str, **kwargs: Any) -> Answer:
        return request(self.session, method, path, token=self.token, **kwargs)

    def retrying(self, method: str, path: str, *, attempts: int = 12, **kwargs: Any) -> Answer:
        """Repeat on a 5xx or no answer (same Idempotency-Key), as the contract asks a client to."""
        answer = self.call(method, path, **kwargs)
        for _ in range(attempts):
            if answer.status and answer.status < 500:
                break
            if not pause(1.0):
                break
            answer = self.call(method, path, **kwargs)
        return answer

    def run(self) -> None:
        while not STOP.is_set():
            kind = self.random.choice(KINDS)
            try:
                self.scenario(kind)
            except Exception as exc:  # noqa: BLE001 - a driver bug must not silence the other threads
                log(f"{self.name}: scenario {kind} raised {exc!r}")
            self.reads()
            pause(0.2)

    def reads(self) -> None:
        self.call("GET", "/api/v1/payments/?page_size=5")
        self.call("GET", "/api/v1/events/?page_size=5")

    def scenario(self, kind: str) -> None:
        number = next(_numbers)
        amount = 1000 + 10 * self.random.randrange(1, 500)
        body: dict[str, Any] = {
            "amount": amount,
            "currency": "usd",
            "customer_id": f"cus_chaos_{number}",
            "payment_method": "pm_card_chargeDeclined" if kind == "decline" else "pm_card_visa",
            "metadata": {"chaos_kind": kind},
        }
        if kind in ("auto_confirm", "manual_confirm", "decline"):
            body["confirm"] = True
        if kind == "manual_confirm":
            body["capture_method"] = "manual"
        created = self.retrying(
            "POST", "/api/v1/payments/", body=body, key=f"chaos-pay-{number}-{secrets.token_hex(4)}"
        )
        if not created.ok:
            return
        payment = created.body
        path = f"/api/v1/payments/{payment['id']}/"
        deadline = time.monotonic() + 60
        confirmed_at_gateway = False
        while time.monotonic() < deadline and not STOP.is_set():
            status = payment["status"]
            answer: Answer | None = None
            if status == "requires_confirmation" and kind == "confirm_later":
                answer = self.call("POST", path + "confirm/", body={})
            elif status == "requires_confirmation" and kind == "webhook_confirm":
                if not confirmed_at_gateway and not self.confirm_at_gateway(payment):
                    return
                confirmed_at_gateway, answer = True, None  # the worker applies the webhook: look again
            elif status == "requires_capture":
                answer = self.call("POST", path + "capture/", body={})
            elif status == "succeeded":
                self.refund(payment)
                return
            elif status in ("processing", "requires_payment_method") or (
                status == "requires_confirmation" and not payment.get("gateway_reference")
            ):
                answer = None  # a worker is finishing it: look again
            else:
                return  # failed, canceled, or a confirm that was lost (the invariants count those)
            if answer is not None and answer.ok:
                payment = answer.body
                continue
            if not pause(1.0):
                return
            fresh = self.call("GET", path)
            if fresh.ok:
                payment = fresh.body

    def refund(self, payment: dict[str, Any]) -> None:
        amount = payment["amount"] if self.random.random() < 0.5 else payment["amount"] // 2
        self.retrying(
            "POST",
            f"/api/v1/payments/{payment['id']}/refunds/",
            body={"amount": amount},
            key=f"chaos-re-{payment['id']}",
        )

    def confirm_at_gateway(self, payment: dict[str, Any]) -> bool:
        """The customer confirms in the browser (Stripe.js; here the simulator); Stripe then sends the webhook."""
        from gateways.base import GatewayError
        from gateways.simulator import SimulatorGateway

        intent = None
        for _ in range(40):
            try:
                intent = SimulatorGateway().confirm_intent(
                    reference=payment["gateway_reference"],
                    payment_method="pm_card_visa",
                    idempotency_key=f"chaos-browser-confirm:{payment['id']}",
                )
                break
            except GatewayError:
                if not pause(1.0):
                    return False
        if intent is None:
            return False
        event = {
            "id": f"evt_chaos_{secrets.token_hex(12)}",
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "livemode": False,
            "type": "payment_intent.succeeded",
            "data": {
                "object": {
                    "id": intent.reference,
                    "object": "payment_intent",
                    "status": intent.status,
                    "amount": intent.amount,
                    "currency": intent.currency,
                    "capture_method": intent.capture_method,
                    "amount_capturable": intent.amount_capturable,
                    "amount_received": intent.amount_received,
                    "payment_method": intent.payment_method,
                    "metadata": intent.metadata,
                    "created": int(intent.created_at.timestamp()) if intent.created_at else int(time.time()),
                }
            },
        }
        with SENT_LOCK:
            SENT_WEBHOOKS.add(event["id"])
        raw = json.dumps(event)
        for _ in range(2):  # Stripe delivers at least once: the same event twice
            self.deliver(raw)
        return True

    def deliver(self, raw: str) -> None:
        import stripe

        for _ in range(15):  # Stripe retries a delivery that was not answered 2xx
            signature = stripe.WebhookSignature.generate_signature_header(raw, WEBHOOK_SECRET)
            answer = request(
                self.session, "POST", "/api/v1/webhooks/stripe/", raw=raw, **{"Stripe-Signature": signature}
            )
            if answer.ok or (answer.status and answer.status < 500) or not pause(1.0):
                return


# --- the faults ------------------------------------------------------------------------------------------
PG, REDIS = Postgres(), Redis()


def fault_worker_kill() -> None:
    with SUPERVISOR.lock:
        WORKER.supervised = False
        WORKER.kill(signal.SIGKILL)
    time.sleep(WORKER_DOWN_SECONDS)  # the fault lasts this long: work piles up for a worker that is gone
    with SUPERVISOR.lock:
        WORKER.start(ENV)
        WORKER.supervised = True


def fault_gunicorn_worker_kill() -> None:
    children = WEB.children()
    if not children:
        raise RuntimeError("gunicorn has no workers")
    os.kill(children[0], signal.SIGKILL)
    wait_for(lambda: len(WEB.children()) == 2, seconds=60, what="gunicorn respawning its worker")


def fault_postgres_restart() -> None:
    PG.restart()


def fault_redis_stop() -> None:
    REDIS.stop()
    time.sleep(FAULT_SECONDS)  # the outage's length
    REDIS.start()


def fault_redis_freeze() -> None:
    REDIS.signal(signal.SIGSTOP)
    try:
        time.sleep(FAULT_SECONDS)  # the freeze's length
    finally:
        REDIS.signal(signal.SIGCONT)


FAULTS: list[tuple[str, Callable[[], None]]] = [
    ("worker_kill", fault_worker_kill),
    ("gunicorn_worker_kill", fault_gunicorn_worker_kill),
    ("postgres_restart", fault_postgres_restart),
    ("redis_stop", fault_redis_stop),
    ("redis_freeze", fault_redis_freeze),
]


def probe(shop: Shop) -> None:
    """Until a create succeeds and a refund of it is submitted by a worker: the service has recovered."""
    deadline = time.monotonic() + RECOVER_SECONDS
    payment: dict[str, Any] | None = None
    key = f"chaos-probe-{secrets.token_hex(6)}"
    body = {
        "amount": 5000,
        "currency": "usd",
        "customer_id": f"cus_chaos_probe_{key}",
        "payment_method": "pm_card_visa",
        "confirm": True,
        "metadata": {"chaos_kind": "probe"},
    }
    refund_id = ""
    while time.monotonic() < deadline:
        if payment is None or payment["status"] != "succeeded":
            answer = shop.call("POST", "/api/v1/payments/", body=body, key=key)
            if answer.ok:
                payment = answer.body
        elif not refund_id:
            answer = shop.call("POST", f"/api/v1/payments/{payment['id']}/refunds/", body={}, key=key + "-re")
            if answer.ok:
                refund_id = answer.body["id"]
        else:
            answer = shop.call("GET", f"/api/v1/refunds/{refund_id}/")
            if answer.ok and answer.body["status"] == "succeeded":
                return
        time.sleep(0.5)  # the probe's pace
    raise RuntimeError(f"the service did not recover within {RECOVER_SECONDS:.0f} s")


# --- the invariants --------------------------------------------------------------------------------------
@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def simulator_state() -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    """The simulator's intents grouped by our payment id (their metadata), and the amount refunded per intent."""
    import redis

    client = redis.Redis.from_url(ENV["REDIS_URL"], socket_timeout=5)
    by_payment: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for raw in client.hvals("gwsim:intents"):
        intent = json.loads(raw)
        by_payment[(intent.get("metadata") or {}).get("payment_id", "")].append(intent)
    refunded = {key.decode(): int(value) for key, value in client.hgetall("gwsim:refunded").items()}
    return by_payment, refunded


def invariants() -> list[Check]:
    from django.conf import settings
    from django.db import close_old_connections
    from django.db.models import Count, Q, Sum

    from events.models import Event
    from payments.models import ChangeSource, Payment, PaymentStatusChange
    from refunds.models import Refund
    from webhooks.models import WebhookEvent, WebhookStatus

    close_old_connections()
    checks: list[Check] = []
    payments = list(Payment.objects.all())
    by_status = Counter(p.status for p in payments)
    unsettled = [p.public_id for p in payments if p.status == "processing" or p.pending_operation]
    checks.append(
        Check(
            "payments settled (none processing, no pending_operation)",
            not unsettled,
            f"{len(payments)} payments {dict(sorted(by_status.items()))}; unsettled {len(unsettled)} {unsettled[:3]}",
        )
    )
    confirm_lost = [
        p.public_id
        for p in payments
        if p.metadata.get("chaos_kind") in ("auto_confirm", "manual_confirm", "probe")
        and p.status in ("requires_payment_method", "requires_confirmation")
    ]
    checks.append(
        Check("confirm: true never lost", not confirm_lost, f"{len(confirm_lost)} left unconfirmed {confirm_lost[:3]}")
    )
    refunds = list(Refund.objects.all())
    pending = [r.public_id for r in refunds if r.status == "pending"]
    refund_states = Counter(r.status for r in refunds)
    checks.append(
        Check(
            "refunds settled (none pending)",
            not pending,
            f"{len(refunds)} refunds {dict(sorted(refund_states.items()))}; pending {len(pending)} {pending[:3]}",
        )
    )

    by_payment, refunded_at_gateway = simulator_state()
    twice, missing, wrong = [], [], []
    for p in payments:
        charged = [i for i in by_payment.get(p.public_id, []) if i["status"] in ("requires_capture", "succeeded")]
        if len(charged) > 1:
            twice.append(p.public_id)
        holds_money = p.status in ("requires_capture", "succeeded", "partially_refunded", "refunded")
        if holds_money and len(charged) != 1:
            missing.append(p.public_id)
        elif holds_money and charged[0]["reference"] != p.gateway_reference:
            wrong.append(p.public_id)
    intents = sum(len(v) for k, v in by_payment.items() if k)
    checks.append(
        Check(
            "no payment charged twice at the gateway",
            not (twice or missing or wrong),
            f"{intents} intents for {len(payments)} payments; charged twice {len(twice)} {twice[:3]}, "
            f"no charge {len(missing)} {missing[:3]}, other intent {len(wrong)} {wrong[:3]}",
        )
    )

    succeeded = dict(Refund.objects.filter(status="succeeded").values_list("payment_id").annotate(total=Sum("amount")))
    mismatched = [
        p.public_id
        for p in payments
        if p.amount_refunded != succeeded.get(p.pk, 0)
        or p.amount_refunded > p.amount_received
        or (p.gateway_reference and refunded_at_gateway.get(p.gateway_reference, 0) != p.amount_refunded)
    ]
    checks.append(
        Check(
            "amount_refunded = succeeded refunds = gateway's",
            not mismatched,
            f"{sum(succeeded.values())} refunded in {len(succeeded)} payments; mismatched {len(mismatched)} "
            f"{mismatched[:3]}",
        )
    )

    events = Event.objects.aggregate(
        total=Count("sequence"),
        unpublished=Count("sequence", filter=Q(published_at__isnull=True)),
        dead=Count(
            "sequence",
            filter=Q(published_at__isnull=True, publish_attempts__gte=settings.OUTBOX_MAX_PUBLISH_ATTEMPTS),
        ),
    )
    checks.append(
        Check(
            "every event published",
            events["unpublished"] == 0,
            f"{events['total']} events; unpublished {events['unpublished']} (dead-lettered {events['dead']})",
        )
    )

    rows = list(WebhookEvent.objects.all())
    stored = {row.stripe_id for row in rows}
    with SENT_LOCK:
        sent = set(SENT_WEBHOOKS)
    not_processed = [row.stripe_id for row in rows if row.status != WebhookStatus.PROCESSED]
    webhook_payments = [row.payment_id for row in rows if row.payment_id]
    applied = Counter(
        PaymentStatusChange.objects.filter(source=ChangeSource.WEBHOOK, payment_id__in=webhook_payments).values_list(
            "payment_id", flat=True
        )
    )
    not_once = [pk for pk in webhook_payments if applied.get(pk, 0) != 1]
    checks.append(
        Check(
            "every webhook stored and applied once",
            sent <= stored and not not_processed and not not_once,
            f"{len(sent)} sent (each twice), {len(rows)} stored, missing {len(sent - stored)}, "
            f"not processed {len(not_processed)} "
            f"{dict(Counter(f'{r.status} {r.ignored_reason}'.strip() for r in rows if r.status != 'processed'))}, "
            f"status changes by webhook != 1: {len(not_once)}",
        )
    )

    once_only = ("requires_capture", "succeeded", "refunded", "canceled", "failed")
    doubled = (
        PaymentStatusChange.objects.filter(to_status__in=once_only)
        .values("payment_id", "to_status")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    checks.append(Check("no transition applied twice", doubled == 0, f"{doubled} (payment, status) entered twice"))
    return checks


def answer_checks(recovery: dict[str, float | None]) -> list[Check]:
    checks = []
    for phase, record in RECORDER.phases.items():
        if phase == "startup":
            continue
        allowed = ACCEPTABLE | ({"reset"} if phase == "gunicorn_worker_kill" else set())
        bad = {category: n for category, n in record.outcomes.items() if category not in allowed}
        missing_retry_after = [e for e in record.examples if "without Retry-After" in e]
        reads_ok = record.reads["not_ok"] == 0 if phase.startswith("redis") else True
        ok = not bad and reads_ok and not missing_retry_after and record.max_latency <= CLIENT_TIMEOUT
        detail = f"bad {bad or 0}; reads {dict(record.reads)}; slowest {record.max_latency:.1f} s ({record.slowest})"
        if record.examples:
            detail += f"; e.g. {record.examples[0]}"
        checks.append(Check(f"API answers during {phase}", ok, detail))
    for phase, seconds in recovery.items():
        checks.append(
            Check(f"recovered after {phase}", seconds is not None, f"{seconds:.1f} s" if seconds is not None else "no")
        )
    return checks


# --- tables ----------------------------------------------------------------------------------------------
def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    line = "+".join("-" * (w + 2) for w in widths)
    out = [" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)), line]
    out += [" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)


def print_answers(recovery: dict[str, float | None], durations: dict[str, float]) -> None:
    categories = ["2xx", "4xx", "502", "503", "reset", "refused", "timeout"]
    others = sorted({c for r in RECORDER.phases.values() for c in r.outcomes} - set(categories))
    headers = ["phase", "fault s", "requests", *categories, *others, "reads ok", "max s", "recovered in s"]
    rows = []
    for phase, record in RECORDER.phases.items():
        if phase == "startup":
            continue
        seconds = recovery.get(phase)
        rows.append(
            [
                phase,
                f"{durations[phase]:.1f}" if phase in durations else "",
                str(sum(record.outcomes.values())),
                *(str(record.outcomes.get(c, 0)) for c in categories + others),
                f"{record.reads['ok']}/{sum(record.reads.values())}",
                f"{record.max_latency:.2f}",
                "" if phase not in recovery else ("no" if seconds is None else f"{seconds:.1f}"),
            ]
        )
    print("\nAnswers per fault (each request under the fault running when it started)")
    print(table(headers, rows))


# --- the run ---------------------------------------------------------------------------------------------
def start_stack() -> None:
    log(f"work dir {WORK}; PostgreSQL {PG_PORT}, Redis {REDIS_PORT}, gunicorn {WEB_PORT}")
    PG.start()
    REDIS.start()
    manage("migrate", "--noinput")
    manage("collectstatic", "--noinput")
    # --password=: a generated password may start with "-"
    manage("create_api_client", "chaos-shop", "--role", "storefront", f"--password={PASSWORD}")
    WEB.start(ENV)
    WORKER.start(ENV)
    BEAT.start(ENV)

    import urllib.request

    def ready() -> bool:
        with urllib.request.urlopen(BASE + "/health/ready", timeout=2) as response:  # noqa: S310 - loopback
            return response.status == 200

    wait_for(ready, seconds=90, what="gunicorn answering /health/ready")
    wait_for(lambda: len(WEB.children()) == 2, seconds=30, what="two gunicorn workers")
    SUPERVISOR.start()


def stop_stack() -> None:
    SUPERVISOR.halt.set()
    for service in (BEAT, WORKER, WEB):
        with contextlib.suppress(OSError):
            service.kill(signal.SIGTERM)
    REDIS.stop()
    with contextlib.suppress(subprocess.SubprocessError):
        PG.stop()


def main() -> int:
    started = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        start_stack()
        import django

        django.setup()
        token = token_for("chaos-shop")
        shops = [Shop(token, f"shop-{n}") for n in range(CLIENT_THREADS)]
        prober = Shop(token, "probe")
        threads = [threading.Thread(target=shop.run, name=shop.name, daemon=True) for shop in shops]
        RECORDER.set_phase("baseline")
        for thread in threads:
            thread.start()
        STOP.wait(STEADY_SECONDS)
        recovery: dict[str, float | None] = {}
        durations: dict[str, float] = {}
        for name, inject in FAULTS:
            log(f"fault: {name}")
            RECORDER.set_phase(name)
            begin = time.monotonic()
            inject()
            lifted = time.monotonic()
            durations[name] = lifted - begin
            try:
                probe(prober)
                recovery[name] = time.monotonic() - lifted
            except RuntimeError as exc:
                log(str(exc))
                recovery[name] = None
            log(f"  lifted after {durations[name]:.1f} s, recovered {recovery[name]}")
            RECORDER.set_phase(f"steady after {name}")
            STOP.wait(STEADY_SECONDS)
        log("faults done; stopping the load")
        RECORDER.set_phase("drain")
        STOP.set()
        for thread in threads:
            thread.join(timeout=90)

        log(f"checking the invariants (up to {SETTLE_SECONDS:.0f} s)")
        settle_start = time.monotonic()
        checks = invariants()
        while not all(c.ok for c in checks) and time.monotonic() - settle_start < SETTLE_SECONDS:
            time.sleep(3)  # polling the invariants
            checks = invariants()
        settled_in = time.monotonic() - settle_start
        checks.append(Check("settled within bound", all(c.ok for c in checks), f"{settled_in:.1f} s"))
        with SUPERVISOR.lock:
            exits = list(SUPERVISOR.exits)
        checks.append(Check("no process exited by itself", not exits, "; ".join(exits) or "none"))
        checks += answer_checks(recovery)

        print_answers(recovery, durations)
        print("\nInvariants")
        print(table(["invariant", "holds", "detail"], [[c.name, "yes" if c.ok else "NO", c.detail] for c in checks]))
        failed = [c.name for c in checks if not c.ok]
        print(f"\nchaos: {len(FAULTS)} faults, {len(checks) - len(failed)}/{len(checks)} invariants hold, ", end="")
        print(f"{time.monotonic() - started:.0f} s in all")
        if failed:
            print("chaos: FAILED: " + "; ".join(failed))
            for service in (WEB, WORKER):
                print(f"\n--- last lines of {service.name}.log ---\n{service.log_tail()}")
            return 1
        return 0
    finally:
        STOP.set()
        stop_stack()
        if KEEP:
            log(f"kept {WORK}")
        else:
            shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
