"""gunicorn settings shared by the image, compose, CI and the benchmarks: `gunicorn -c config/gunicorn.conf.py`.

Everything is read from the environment so one file serves every deployment:
`PORT` (8000), `WEB_CONCURRENCY` worker processes (2), `GUNICORN_THREADS` threads per worker (4).
Size the database pool from it: each thread holds at most one connection, so a web host needs
`WEB_CONCURRENCY x GUNICORN_THREADS` connections (see docs/architecture.md, "Connections").
`PROMETHEUS_MULTIPROC_DIR` (a directory of its own, e.g. a tmpfs): /metrics adds up every worker (hooks below).
"""

import os
from pathlib import Path
from typing import Any

wsgi_app = "config.wsgi:application"
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104 - inside a container
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
logger_class = "config.access_log.MaskingLogger"  # card numbers and secrets masked in the access log
errorlog = "-"

# Requests gunicorn refuses itself (bad header, oversized headers) get the API's JSON envelope too.
from config.gunicorn_errors import install as _json_errors  # noqa: E402

_json_errors()


# --- Prometheus multi-process mode (config/metrics.py) ---------------------------------------------
# With PROMETHEUS_MULTIPROC_DIR set, each worker writes its metrics to files there and /metrics sums
# them. The master empties the directory once at start (the files of an earlier run would be added to
# this run's totals) and marks every exited worker dead (its live gauges leave the sum; its counters stay).
def on_starting(server: object) -> None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        for file in directory.glob("*.db"):
            file.unlink(missing_ok=True)


def child_exit(server: object, worker: Any) -> None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, path)
