#!/usr/bin/env bash
# Start a throwaway PostgreSQL, Redis and localstripe (scripts/localstripe_server.py) on free loopback
# ports, run the given command with DATABASE_URL, REDIS_URL and LOCALSTRIPE_URL pointing at them, then
# stop them all (whatever the command did).
# Usage: scripts/with-services.sh pytest -q
# PG_DURABLE=1 keeps PostgreSQL's durability settings (fsync, synchronous commit) for benchmarks.
set -euo pipefail

need() { command -v "$1" >/dev/null 2>&1; }

pg_bin() {
  if need pg_config && [ -x "$(pg_config --bindir)/initdb" ]; then pg_config --bindir; return; fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

PGBIN=$(pg_bin)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
  echo "PostgreSQL server binaries not found (initdb). Install them: apt-get install postgresql (Debian) or brew install postgresql." >&2
  exit 1
fi
if ! need redis-server; then
  echo "redis-server not found. Install it: apt-get install redis-server (Debian) or brew install redis." >&2
  exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/paysvc-services.XXXXXX")
PG_PORT=$(free_port)
REDIS_PORT=$(free_port)
REDIS_PID=""
LOCALSTRIPE_PID=""
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOCALSTRIPE_PYTHON=${LOCALSTRIPE_PYTHON:-$ROOT/.venv/bin/python}

as_pg() {
  if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
  set +e
  [ -f "$WORK/pg/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -m immediate -w stop >/dev/null 2>&1
  [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
  [ -n "$LOCALSTRIPE_PID" ] && kill "$LOCALSTRIPE_PID" 2>/dev/null && wait "$LOCALSTRIPE_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

PG_SPEED="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"  # a throwaway test cluster
[ "${PG_DURABLE:-0}" = "1" ] && PG_SPEED=""
[ "$(id -u)" = "0" ] && chown postgres: "$WORK"
as_pg "$PGBIN/initdb" -D "$WORK/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >"$WORK/initdb.log" 2>&1 \
  || { cat "$WORK/initdb.log" >&2; exit 1; }
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w start \
  -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $WORK -c max_connections=200 $PG_SPEED" \
  >/dev/null || { cat "$WORK/pg.log" >&2; exit 1; }

redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 1 50); do
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done

# localstripe, in memory, for the Stripe gateway tests (tests/gateways start their own when this is unset).
if [ -x "$LOCALSTRIPE_PYTHON" ]; then
  LOCALSTRIPE_PORT=$(free_port)
  "$LOCALSTRIPE_PYTHON" "$ROOT/scripts/localstripe_server.py" --port "$LOCALSTRIPE_PORT" >"$WORK/localstripe.log" 2>&1 &
  LOCALSTRIPE_PID=$!
  "$LOCALSTRIPE_PYTHON" - "http://127.0.0.1:$LOCALSTRIPE_PORT/js.stripe.com/v3/" <<'PY' || { cat "$WORK/localstripe.log" >&2; exit 1; }
import sys, time, urllib.error, urllib.request

deadline = time.monotonic() + 15
while True:
    try:
        urllib.request.urlopen(sys.argv[1], timeout=1).close()
        break
    except (urllib.error.URLError, OSError):
        if time.monotonic() > deadline:
            sys.exit("localstripe did not answer within 15 s")
        time.sleep(0.1)
PY
  export LOCALSTRIPE_URL="http://127.0.0.1:$LOCALSTRIPE_PORT"
else
  echo "localstripe not started: $LOCALSTRIPE_PYTHON not found (make install creates it)." >&2
fi

export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
echo "services: PostgreSQL on $PG_PORT, Redis on $REDIS_PORT, localstripe on ${LOCALSTRIPE_PORT:-(none)}" >&2

set +e
"$@"
status=$?
exit $status
