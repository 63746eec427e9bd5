#!/usr/bin/env bash
# Start a throwaway PostgreSQL and Redis on free loopback ports, run the given command with
# DATABASE_URL and REDIS_URL pointing at them, then stop both (whatever the command did).
# Usage: scripts/with-services.sh pytest -q
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

as_pg() {
  if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
  set +e
  [ -f "$WORK/pg/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -m immediate -w stop >/dev/null 2>&1
  [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

[ "$(id -u)" = "0" ] && chown postgres: "$WORK"
as_pg "$PGBIN/initdb" -D "$WORK/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >"$WORK/initdb.log" 2>&1 \
  || { cat "$WORK/initdb.log" >&2; exit 1; }
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w start \
  -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $WORK -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  >/dev/null || { cat "$WORK/pg.log" >&2; exit 1; }

redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 1 50); do
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done

export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
echo "services: PostgreSQL on $PG_PORT, Redis on $REDIS_PORT" >&2

set +e
"$@"
status=$?
exit $status
