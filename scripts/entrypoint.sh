#!/bin/sh
# The image's one entrypoint (Dockerfile ENTRYPOINT), also run as is by tests/deploy outside Docker.
#
#   entrypoint.sh web            gunicorn -c config/gunicorn.conf.py (the image's default command)
#   entrypoint.sh worker         the Celery worker on every queue (default,gateway,webhooks,events)
#   entrypoint.sh beat           Celery beat; exactly one per deployment
#   entrypoint.sh migrate        apply migrations, once per release, before web/worker/beat start
#   entrypoint.sh collectstatic  hashed, gzipped static files into STATIC_ROOT (the image build runs it)
#   entrypoint.sh health ROLE    exit 0 when ROLE (web, worker or beat) is healthy: the health checks
#   entrypoint.sh CMD ARGS...    anything else runs as given (python manage.py shell, celery inspect ...)
#
# web never migrates by itself: several web replicas would race each other on the schema. Run
# `migrate` once per release first (compose: the one-shot `migrate` service the others wait for).
# Environment: PORT, HOST, WEB_CONCURRENCY, GUNICORN_THREADS (config/gunicorn.conf.py);
# CELERY_WORKER_CONCURRENCY (worker processes, default one per CPU); CELERY_LOG_LEVEL (INFO);
# BEAT_SCHEDULE_FILE (beat's last-run times, /tmp/celerybeat-schedule); BEAT_HEALTH_MAX_AGE_SECONDS (600);
# PROMETHEUS_MULTIPROC_DIR (web, /tmp/metrics-web), CELERY_PROMETHEUS_MULTIPROC_DIR (worker,
# /tmp/metrics-worker) and CELERY_METRICS_PORT (the worker's /metrics, 9808): scrape web and worker both.
set -eu
cd "$(dirname "$0")/.."

QUEUES=default,gateway,webhooks,events  # config/celery.py QUEUES
BEAT_SCHEDULE_FILE=${BEAT_SCHEDULE_FILE:-/tmp/celerybeat-schedule}
LOG_LEVEL_CELERY=${CELERY_LOG_LEVEL:-INFO}

health() {
  case "${1:-}" in
    web)
      # /health/ready on this host's own port; X-Forwarded-Proto so SECURE_SSL_REDIRECT does not redirect the probe.
      exec python - <<'PY'
import os
import sys
import urllib.error
import urllib.request

url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/health/ready"
request = urllib.request.Request(url, headers={"X-Forwarded-Proto": "https"})
try:
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - our own loopback port
        print(response.status, response.read().decode())
except (urllib.error.URLError, OSError) as exc:
    sys.exit(f"web not ready: {exc}")
PY
      ;;
    worker)
      # This host's worker (celery@hostname, Celery's default node name) answers a ping over the broker.
      node="celery@$(python -c 'import socket; print(socket.gethostname())')"
      exec celery -A config inspect ping --destination "$node" --timeout 5
      ;;
    beat)
      # Beat rewrites its schedule file as it sends tasks (the outbox sweep every 30 s, a sync at least
      # every 3 min): missing or older than BEAT_HEALTH_MAX_AGE_SECONDS means beat is not scheduling.
      exec python - "$BEAT_SCHEDULE_FILE" "${BEAT_HEALTH_MAX_AGE_SECONDS:-600}" <<'PY'
import glob
import os
import sys
import time

path, max_age = sys.argv[1], float(sys.argv[2])
files = glob.glob(glob.escape(path)) + glob.glob(glob.escape(path) + ".*")  # dbm may add a suffix
if not files:
    sys.exit(f"beat not healthy: no schedule file at {path}")
age = time.time() - max(os.path.getmtime(name) for name in files)
if age > max_age:
    sys.exit(f"beat not healthy: schedule file unchanged for {age:.0f} s")
print(f"beat schedule file written {age:.0f} s ago")
PY
      ;;
    *)
      echo "usage: $0 health web|worker|beat" >&2
      exit 2
      ;;
  esac
}

command=${1:-web}
if [ "$#" -gt 0 ]; then shift; fi

case "$command" in
  web)
    # Metrics add up across gunicorn's workers through files here (config/gunicorn.conf.py empties it at start).
    export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/tmp/metrics-web}"
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    exec gunicorn -c config/gunicorn.conf.py "$@"
    ;;
  worker)
    # The worker's processes add up in a directory of their own, served on their own port (config/metrics.py).
    export PROMETHEUS_MULTIPROC_DIR="${CELERY_PROMETHEUS_MULTIPROC_DIR:-/tmp/metrics-worker}"
    export CELERY_METRICS_PORT="${CELERY_METRICS_PORT:-9808}"
    # A fresh start: files of an earlier run's processes would be added to this run's totals.
    rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    # shellcheck disable=SC2086 - the optional flag expands to two words or none
    exec celery -A config worker -l "$LOG_LEVEL_CELERY" -Q "$QUEUES" \
      ${CELERY_WORKER_CONCURRENCY:+--concurrency "$CELERY_WORKER_CONCURRENCY"} "$@"
    ;;
  beat)
    exec celery -A config beat -l "$LOG_LEVEL_CELERY" --schedule "$BEAT_SCHEDULE_FILE" "$@"
    ;;
  migrate)
    exec python manage.py migrate --noinput "$@"
    ;;
  collectstatic)
    # Settings refuse to load without a real key when DEBUG is off; a build has none, and this one is thrown away.
    : "${DJANGO_SECRET_KEY:=build-only-$(python -c 'import secrets; print(secrets.token_urlsafe(64))')}"
    : "${ENCRYPTION_KEYS:=$(python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')}"
    : "${BLIND_INDEX_KEY:=$(python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')}"
    export DJANGO_SECRET_KEY ENCRYPTION_KEYS BLIND_INDEX_KEY
    exec python manage.py collectstatic --noinput "$@"
    ;;
  health)
    health "$@"
    ;;
  *)
    exec "$command" "$@"
    ;;
esac
