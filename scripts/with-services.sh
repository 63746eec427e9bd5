#!/usr/bin/env bash
# Start a throwaway PostgreSQL, Redis, RabbitMQ and localstripe (scripts/localstripe_server.py) on free
# loopback ports, run the given command with DATABASE_URL, REDIS_URL, RABBITMQ_URL and LOCALSTRIPE_URL
# pointing at them, then stop them all (whatever the command did).
# Usage: scripts/with-services.sh pytest -q
# PG_DURABLE=1 keeps PostgreSQL's durability settings (fsync, synchronous commit) for benchmarks.
# PG_EXTRA: more server options (for example "-c shared_preload_libraries=pg_stat_statements").
# RabbitMQ boots in the background (about 4 s) while the command starts: whatever uses it waits for
# RABBITMQ_URL to answer (tests/events/test_rabbitmq.py). Without rabbitmq-server (or with
# WITH_RABBITMQ=0) RABBITMQ_URL stays unset and the tests that need it fail saying so.
set -euo pipefail

need() { command -v "$1" >/dev/null 2>&1; }

pg_bin() {
  if need pg_config && [ -x "$(pg_config --bindir)/initdb" ]; then pg_config --bindir; return; fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

rabbitmq_server_bin() {
  # Debian's /usr/sbin/rabbitmq-server switches to the rabbitmq user; the script it wraps runs as anyone.
  if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then echo /usr/lib/rabbitmq/bin/rabbitmq-server; return; fi
  command -v rabbitmq-server 2>/dev/null || true
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
RABBITMQ_PID=""
RABBITMQ_OWN_GROUP=0
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
  if [ -n "$RABBITMQ_PID" ]; then
    if [ "$RABBITMQ_OWN_GROUP" = "1" ]; then
      kill -KILL -- "-$RABBITMQ_PID" 2>/dev/null  # its own process group: the script, the Erlang VM and its helpers
    else
      kill -TERM "$RABBITMQ_PID" 2>/dev/null  # the script's trap stops the node
    fi
    wait "$RABBITMQ_PID" 2>/dev/null
    # The Erlang VM itself, should it have left that group (the pid file it writes at boot).
    beam_pid=$(cat "$RABBITMQ_DIR/beam.pid" 2>/dev/null)
    [ -n "$beam_pid" ] && [ "$(ps -o comm= -p "$beam_pid" 2>/dev/null)" = "beam.smp" ] && kill -KILL "$beam_pid" 2>/dev/null
    # The node started its own epmd on ERL_EPMD_PORT (a port of this run only): stop that one, once it
    # has noticed the node is gone (it refuses while a node is registered).
    for _ in $(seq 1 30); do
      epmd -port "$RABBITMQ_EPMD_PORT" -kill >/dev/null 2>&1 && break
      epmd -port "$RABBITMQ_EPMD_PORT" -names >/dev/null 2>&1 || break
      sleep 0.1
    done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# RabbitMQ first: its boot takes longest, so it runs while the others start. Everything it writes
# (database, logs, Erlang cookie) stays under $WORK; its ports, epmd's included, are this run's own.
RABBITMQ_SERVER=$(rabbitmq_server_bin)
if [ "${WITH_RABBITMQ:-1}" = "0" ]; then
  echo "RabbitMQ not started (WITH_RABBITMQ=0): RABBITMQ_URL is unset." >&2
elif [ -z "$RABBITMQ_SERVER" ]; then
  echo "rabbitmq-server not found: RABBITMQ_URL is unset and the RabbitMQ tests will fail. Install it: apt-get install rabbitmq-server (Debian, or scripts/ensure-system-deps.sh) or brew install rabbitmq." >&2
else
  read -r RABBITMQ_PORT RABBITMQ_DIST_PORT RABBITMQ_EPMD_PORT < <(python3 - <<'PY'
import socket
sockets = [socket.socket() for _ in range(3)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))
PY
)
  RABBITMQ_DIR="$WORK/rabbitmq"
  mkdir -p "$RABBITMQ_DIR/mnesia" "$RABBITMQ_DIR/log"
  echo "[]." >"$RABBITMQ_DIR/enabled_plugins"
  : >"$RABBITMQ_DIR/rabbitmq-env.conf"
  printf 'listeners.tcp.default = 127.0.0.1:%s\n' "$RABBITMQ_PORT" >"$RABBITMQ_DIR/rabbitmq.conf"
  # +sbwt none: no busy-waiting schedulers, so an idle node leaves the CPU to the tests.
  rabbitmq_env=(
    HOME="$RABBITMQ_DIR"
    RABBITMQ_CONF_ENV_FILE="$RABBITMQ_DIR/rabbitmq-env.conf"
    RABBITMQ_CONFIG_FILE="$RABBITMQ_DIR/rabbitmq.conf"
    RABBITMQ_ENABLED_PLUGINS_FILE="$RABBITMQ_DIR/enabled_plugins"
    RABBITMQ_MNESIA_BASE="$RABBITMQ_DIR/mnesia"
    RABBITMQ_LOG_BASE="$RABBITMQ_DIR/log"
    RABBITMQ_PID_FILE="$RABBITMQ_DIR/beam.pid"
    RABBITMQ_NODENAME="rabbit-$RABBITMQ_PORT@localhost"
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    RABBITMQ_NODE_PORT="$RABBITMQ_PORT"
    RABBITMQ_DIST_PORT="$RABBITMQ_DIST_PORT"
    ERL_EPMD_PORT="$RABBITMQ_EPMD_PORT"
    ERL_EPMD_ADDRESS=127.0.0.1
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+sbwt none +sbwtdcpu none +sbwtdio none"
  )
  if need setsid; then
    RABBITMQ_OWN_GROUP=1
    env "${rabbitmq_env[@]}" setsid "$RABBITMQ_SERVER" </dev/null >"$RABBITMQ_DIR/server.log" 2>&1 &
  else
    env "${rabbitmq_env[@]}" "$RABBITMQ_SERVER" </dev/null >"$RABBITMQ_DIR/server.log" 2>&1 &
  fi
  RABBITMQ_PID=$!
  export RABBITMQ_URL="amqp://guest:guest@127.0.0.1:$RABBITMQ_PORT//"
  export RABBITMQ_LOG="$RABBITMQ_DIR/server.log"
fi

PG_SPEED="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"  # a throwaway test cluster
[ "${PG_DURABLE:-0}" = "1" ] && PG_SPEED=""
[ "$(id -u)" = "0" ] && chown postgres: "$WORK"
as_pg "$PGBIN/initdb" -D "$WORK/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >"$WORK/initdb.log" 2>&1 \
  || { cat "$WORK/initdb.log" >&2; exit 1; }
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w start \
  -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $WORK -c max_connections=200 $PG_SPEED ${PG_EXTRA:-}" \
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
echo "services: PostgreSQL on $PG_PORT, Redis on $REDIS_PORT, localstripe on ${LOCALSTRIPE_PORT:-(none)}, RabbitMQ on ${RABBITMQ_PORT:-(none)}${RABBITMQ_PORT:+ (booting)}" >&2

set +e
"$@"
status=$?
exit $status
