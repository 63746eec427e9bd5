"""PostgreSQL for the backup tests: server binaries, a cluster of the test's own, digests of a database."""

import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from django.db import connection
from psycopg import sql


def pg_bin() -> Path:
    """The server's binaries (initdb, pg_ctl, pg_resetwal, matching clients) as scripts/with-services.sh finds them."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True).stdout.strip()  # noqa: S603
        if (Path(bindir) / "initdb").exists():
            return Path(bindir)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    assert candidates, "PostgreSQL server binaries not found"
    return Path(candidates[-1])


def client_env() -> dict[str, str]:
    """The environment for deploy/postgres/*.sh: the client binaries of the server's version."""
    bindir = pg_bin()
    return {
        **os.environ,
        "PG_DUMP": str(bindir / "pg_dump"),
        "PG_RESTORE": str(bindir / "pg_restore"),
        "PSQL": str(bindir / "psql"),
    }


def as_postgres(args: list[str]) -> list[str]:
    """initdb, pg_ctl and pg_resetwal refuse to run as root: run them as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def url(*, host: str, port: int | str, name: str, user: str = "postgres", password: str = "") -> str:
    auth = quote(user) + (":" + quote(password) if password else "")
    return f"postgresql://{auth}@{host}:{port}/{name}"


def same_server_url(name: str | None = None) -> str:
    """The test database (or another one on the same server), as a libpq URL."""
    settings = connection.settings_dict
    return url(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        name=name or settings["NAME"],
        user=settings["USER"] or "postgres",
        password=settings["PASSWORD"] or "",
    )


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@dataclass(frozen=True)
class Digest:
    """What a database holds: every public table's row count and ordered hash, sequences, indexes, constraints."""

    tables: dict[str, tuple[int, str]]
    sequences: list[tuple]
    indexes: list[tuple]
    constraints: list[tuple]


def digest(database_url: str) -> Digest:
    with psycopg.connect(database_url, autocommit=True) as conn:
        names = [row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        tables = {}
        for name in sorted(names):
            query = sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {} AS t"
            ).format(sql.Identifier(name))
            count, md5 = conn.execute(query).fetchone()  # type: ignore[misc]
            tables[name] = (count, md5)
        sequences = conn.execute(
            "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
        indexes = conn.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2"
        ).fetchall()
        constraints = [
            (table, name, _same_meaning(definition))
            for table, name, definition in conn.execute(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2"
            )
        ]
    return Digest(tables, sequences, indexes, constraints)


def _same_meaning(definition: str) -> str:
    """A constraint's text without casts and parentheses.

    PostgreSQL prints `x IN (...)` checks on varchar as `ARRAY['a'::varchar, ...]::text[]` when Django
    created them and as `ARRAY[('a'::varchar)::text, ...]` once dumped and read back: the same check.
    """
    return re.sub(r"::[a-z ]+(\[\])?|[()]", "", definition)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cluster:
    """A PostgreSQL cluster of the test's own (another machine's, as far as the restore is concerned)."""

    data: Path
    port: int

    def server_url(self, name: str = "postgres") -> str:
        return url(host="127.0.0.1", port=self.port, name=name)

    def _ctl(self, *args: str) -> None:
        subprocess.run(as_postgres([str(pg_bin() / "pg_ctl"), "-D", str(self.data), *args]), check=True, timeout=60)  # noqa: S603

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data.parent} -c fsync=off"
        self._ctl("-l", str(self.data.parent / "pg.log"), "-w", "start", "-o", options)

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")

    def resetwal(self, *args: str) -> None:
        subprocess.run(  # noqa: S603
            as_postgres([str(pg_bin() / "pg_resetwal"), *args, "-D", str(self.data)]), check=True, timeout=60
        )


@contextmanager
def new_cluster() -> Iterator[Cluster]:
    """initdb a cluster in a temporary directory, start it, and stop and remove it afterwards."""
    work = Path(tempfile.mkdtemp(prefix="paysvc-restore-"))
    if os.geteuid() == 0:
        shutil.chown(work, "postgres")
    cluster = Cluster(data=work / "pg", port=free_port())
    initdb = [str(pg_bin() / "initdb"), "-D", str(cluster.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
    subprocess.run(  # noqa: S603
        as_postgres([*initdb, "--locale=C.UTF-8", "--no-sync"]), check=True, capture_output=True, timeout=120
    )
    cluster.start()
    try:
        yield cluster
    finally:
        subprocess.run(  # noqa: S603
            as_postgres([str(pg_bin() / "pg_ctl"), "-D", str(cluster.data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
            check=False,
            timeout=60,
        )
        shutil.rmtree(work, ignore_errors=True)


@contextmanager
def django_database(*, name: str, host: str | None = None, port: int | None = None) -> Iterator[None]:
    """Point Django's connection at another database (a restored one) for the block, then back."""
    settings = connection.settings_dict
    saved = {key: settings[key] for key in ("NAME", "HOST", "PORT")}
    connection.close()
    settings["NAME"] = name
    if host is not None:
        settings["HOST"], settings["PORT"] = host, str(port)
    try:
        yield
    finally:
        connection.close()
        settings.update(saved)
