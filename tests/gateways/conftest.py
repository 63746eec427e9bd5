"""Gateway fixtures: localstripe (our launcher, `LOCALSTRIPE_URL` or started here), wiped before each test."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import stripe

from gateways.stripe import StripeGateway

API_KEY = "sk_test_gatewaytests0123456789"
LAUNCHER = Path(__file__).resolve().parents[2] / "scripts" / "localstripe_server.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_answering(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            requests.get(f"{url}/js.stripe.com/v3/", timeout=1)
            return
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"localstripe did not start:\n{log.read_text()}") from None
            time.sleep(0.05)


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    """The launcher's URL: `LOCALSTRIPE_URL` (scripts/with-services.sh) or one started for this session."""
    if url := os.environ.get("LOCALSTRIPE_URL"):
        yield url.rstrip("/")
        return
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "localstripe.log"
        with log.open("w") as output:
            process = subprocess.Popen(  # noqa: S603 - our own script, fixed arguments
                [sys.executable, str(LAUNCHER), "--port", str(port)], stdout=output, stderr=subprocess.STDOUT
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_answering(url, process, log)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


@dataclass
class LocalStripe:
    """Direct access to localstripe, for setting up and inspecting what the gateway cannot show."""

    url: str
    client: stripe.StripeClient

    def authenticate(self, intent_reference: str, *, success: bool) -> None:
        """Complete (or fail) a 3-D Secure challenge, as the customer would in the browser."""
        client_secret = self.client.v1.payment_intents.retrieve(intent_reference).client_secret
        response = requests.post(
            f"{self.url}/v1/payment_intents/{intent_reference}/_authenticate",
            data={"client_secret": client_secret, "success": "true" if success else "false"},
            auth=(API_KEY, ""),
            timeout=5,
        )
        response.raise_for_status()

    def charge_count(self) -> int:
        return len(list(self.client.v1.charges.list({"limit": 100}).auto_paging_iter()))

    def card(self, number: str) -> str:
        """A card payment method from a raw test card number (localstripe knows them by number)."""
        card = {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}
        return self.client.v1.payment_methods.create({"type": "card", "card": card}).id


@pytest.fixture
def localstripe(localstripe_url: str) -> LocalStripe:
    """localstripe with no objects (and no remembered idempotency keys)."""
    requests.delete(f"{localstripe_url}/_config/data", timeout=5).raise_for_status()
    client = stripe.StripeClient(API_KEY, base_addresses={"api": localstripe_url}, max_network_retries=0)
    return LocalStripe(url=localstripe_url, client=client)


@pytest.fixture
def gateway(localstripe: LocalStripe) -> StripeGateway:
    """The gateway under test, on localstripe, with small pages so that listing has to page."""
    return StripeGateway(api_key=API_KEY, api_base=localstripe.url, timeout=5.0, page_size=5)


@dataclass
class StubStripe:
    """A fake Stripe that answers every request with `status` and `body`, and records what it got."""

    url: str = ""
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)  # method, path, headers
    bodies: list[str] = field(default_factory=list)  # the form-encoded request bodies, in the same order


@pytest.fixture
def stub_stripe() -> Iterator[StubStripe]:
    stub = StubStripe()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            stub.requests.append((self.command, self.path, dict(self.headers)))
            stub.bodies.append(body.decode())
            payload = json.dumps(stub.body).encode()
            self.send_response(stub.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield stub
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that takes connections (the kernel accepts them into the backlog) and never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
