"""Processes of a reliability test's own: a Redis it may freeze, and gunicorn as the image runs it."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.helpers import wait_for
from tests.live import free_port
from tests.live import gunicorn as live_gunicorn

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RedisServer:
    pid: int
    url: str

    def freeze(self) -> None:
        """SIGSTOP: the process and its sockets stay (the kernel still accepts connections), nothing answers."""
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)


@contextmanager
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test only, on its own port, no persistence; stopped (thawed first) at the end."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server not found (apt-get install redis-server)"
    port = free_port()
    with (tmp_path / "redis.log").open("wb") as log:
        process = subprocess.Popen(  # noqa: S603
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = RedisServer(pid=process.pid, url=f"redis://127.0.0.1:{port}/0")

    def answers() -> bool:
        assert process.poll() is None, (tmp_path / "redis.log").read_text()
        try:
            return bool(redis.Redis.from_url(server.url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    try:
        wait_for(answers, timeout=10)
        yield server
    finally:
        if process.poll() is None:
            server.thaw()  # a stopped process would not act on SIGTERM
            process.terminate()
            process.wait(timeout=10)


@contextmanager
def gunicorn(tmp_path: Path, *, jwt_key: str, env: dict[str, str]) -> Iterator[str]:
    """gunicorn as the image runs it (tests/live.py) on the test database; `env` points it at the Redis to freeze."""
    with live_gunicorn(tmp_path / "gunicorn.log", {"JWT_SIGNING_KEY": jwt_key, **env}) as port:
        yield f"http://127.0.0.1:{port}"


class TcpProxy:
    """A TCP proxy to a server (PostgreSQL here) that the test can cut: `down()` drops every connection and
    refuses new ones (as a database restart does), `up()` forwards again. `refused` counts refused connects."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.refused = 0
        self._up = True
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                if not self._up:
                    self.refused += 1
                    client.close()
                    continue
                try:
                    upstream = socket.create_connection(self.target, timeout=5)
                except OSError:
                    client.close()
                    continue
                upstream.settimeout(None)
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self._lock:
                self._open -= {source, sink}

    def down(self) -> None:
        with self._lock:
            self._up = False
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def up(self) -> None:
        with self._lock:
            self._up = True

    def close(self) -> None:
        self._closed = True
        self.down()
        self.listener.close()
