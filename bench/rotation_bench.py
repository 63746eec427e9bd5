"""Benchmark `manage.py rotate_encryption_key` at 1 M customers (make bench; issue #20: "its benchmark figure at 1 M
rows").

Seeds the customers with their e-mail and name sealed under an OLD key: the ciphertexts are made in Python (timed
on their own: that is AES-GCM at Python speed, not the database) and COPYed into a staging table, then moved into
the customers table in one INSERT … SELECT. Then runs the command as an operator would, in its own process, with
ENCRYPTION_KEYS=NEW,OLD: prints the values rotated per second, the total seconds, its peak RSS, and the longest
single batch (the longest any row is locked), then a second run (nothing left to do) and `--check`. Prints
figures; asserts only that the rotation left nothing behind. BENCH_ROTATION_SIZE changes the row count.
"""

import os
import re
import resource
import secrets
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import NOT_PROVIDED  # noqa: E402

from accounts.models import User  # noqa: E402
from config.encryption import email_index, keyring, new_key  # noqa: E402
from customers.models import Customer  # noqa: E402

COUNT = int(os.environ.get("BENCH_ROTATION_SIZE", "1000000"))
BATCH_SIZE = int(os.environ.get("BENCH_ROTATION_BATCH_SIZE", "1000"))
CHUNK = 50_000  # rows sealed and COPYed at a time (the bench's own memory stays flat)
PREFIX = "cu_rotbench"
STAGING = "bench_rotation_staging"
SECRET = secrets.token_urlsafe(64)
BLIND_INDEX_KEY = new_key()  # not rotated; the command's process only needs one to start with DEBUG off


def _seal(count: int) -> float:
    """Seal `count` e-mails and names under the current key into the staging table; the seconds sealing took."""
    email_field, name_field = Customer._meta.get_field("email"), Customer._meta.get_field("name")
    ring = keyring()
    sealing = 0.0
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {STAGING}")
        cursor.execute(f"CREATE UNLOGGED TABLE {STAGING} (n bigint, email text, name text, email_index text)")
        for start in range(0, count, CHUNK):
            started = time.perf_counter()
            rows = []
            for n in range(start, min(start + CHUNK, count)):
                email = f"buyer{n}@example.com"
                rows.append(
                    (
                        n,
                        ring.encrypt(email, context=email_field.context),  # type: ignore[attr-defined]
                        ring.encrypt(f"Buyer Number {n}", context=name_field.context),  # type: ignore[attr-defined]
                        email_index(email),
                    )
                )
            sealing += time.perf_counter() - started
            with cursor.copy(f"COPY {STAGING} (n, email, name, email_index) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    return sealing


def _insert(client: User) -> None:
    """The staged rows into customers_customer: one INSERT … SELECT (bench/seed.py's way, from a table)."""
    overrides = {
        "public_id": f"'{PREFIX}' || lpad(s.n::text, 10, '0')",
        "client_id": str(int(client.pk)),
        "customer_id": "'rotbench_' || s.n::text",
        "email": "s.email",
        "name": "s.name",
        "email_index": "s.email_index",
        "created_at": "now()",
        "updated_at": "now()",
    }
    columns, values, params = [], [], []
    for field in Customer._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(connection.ops.quote_name(field.column))
        if field.attname in overrides:
            values.append(overrides[field.attname])
        elif field.default is not NOT_PROVIDED:
            values.append("%s")
            params.append(field.get_db_prep_save(field.get_default(), connection))
        else:
            values.append("NULL")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Customer._meta.db_table} ({', '.join(columns)}) "  # noqa: S608 - our own names
            f"SELECT {', '.join(values)} FROM {STAGING} AS s ORDER BY s.n",
            params,
        )
        cursor.execute(f"DROP TABLE {STAGING}")
        cursor.execute(f"VACUUM ANALYZE {Customer._meta.db_table}")


def _clean() -> None:
    Customer.objects.filter(public_id__startswith=PREFIX)._raw_delete(connection.alias)


def _command(*args: str, keys: list[str]) -> tuple[int, str, float, int]:
    """Run the command in its own process: (exit code, output, seconds, peak RSS of that process in KiB)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "False",  # as in production: no query log kept, no debug cursor
        "DJANGO_SECRET_KEY": SECRET,
        "JWT_SIGNING_KEY": SECRET,
        "ENCRYPTION_KEYS": ",".join(keys),
        "BLIND_INDEX_KEY": BLIND_INDEX_KEY,
    }
    for name in ("DJANGO_SECRET_KEY_FILE", "JWT_SIGNING_KEY_FILE", "ENCRYPTION_KEYS_FILE", "BLIND_INDEX_KEY_FILE"):
        env.pop(name, None)
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, str(ROOT / "manage.py"), "rotate_encryption_key", "--quiet", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far (the rotation: first)
    return done.returncode, done.stdout + done.stderr, seconds, peak


def main() -> None:
    call_command("migrate", verbosity=0)
    old, new = new_key(), new_key()
    settings.ENCRYPTION_KEYS = [old]  # the seed seals under OLD
    shop, _ = User.objects.get_or_create(username="bench-rotation-shop", defaults={"api_role": "storefront"})
    _clean()
    started = time.perf_counter()
    sealing = _seal(COUNT)
    _insert(shop)
    print(
        f"seeded {COUNT:,} customers under OLD in {time.perf_counter() - started:.1f} s "
        f"(of which sealing {2 * COUNT:,} values in Python: {sealing:.1f} s, {2 * COUNT / sealing:,.0f} values/s)",
        flush=True,
    )
    try:
        code, output, seconds, peak_kib = _command("--batch-size", str(BATCH_SIZE), keys=[new, old])
        if code != 0:
            raise RuntimeError(f"rotate_encryption_key exited {code}:\n{output}")
        lines = [line for line in output.splitlines() if line.startswith("customers.customer.")]
        rotated = sum(int(line.split(": ")[1].split()[0].replace(",", "")) for line in lines)
        own = sum(float(re.search(r"left, ([\d.]+) s", line).group(1)) for line in lines)  # type: ignore[union-attr]
        longest = max(float(ms) for ms in re.findall(r"longest batch (\d+) ms", output))
        print(
            f"rotation of {COUNT:,} customers to NEW (e-mail + name: {rotated:,} values, batches of {BATCH_SIZE}): "
            f"{own:.1f} s in the passes ({seconds:.1f} s with the process's start), {rotated / own:,.0f} values/s, "
            f"{COUNT / own:,.0f} rows/s; peak RSS {peak_kib / 1024:.0f} MiB; longest batch UPDATE {longest:.0f} ms",
            flush=True,
        )
        for line in lines:
            print(f"  {line}")
        code, output, seconds, _peak = _command(keys=[new, old])
        summary = output.strip().splitlines()[-1]
        print(f"second run (nothing left): exit {code}, {seconds:.1f} s with the process's start; {summary}")
        code, output, seconds, _peak = _command("--check", keys=[new])
        print(f"--check with NEW alone: exit {code} in {seconds:.1f} s", flush=True)
        if code != 0:
            raise RuntimeError(f"values left behind:\n{output}")
    finally:
        _clean()


if __name__ == "__main__":
    main()
