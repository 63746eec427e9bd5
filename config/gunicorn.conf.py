"""gunicorn settings shared by the image, compose, CI and the benchmarks: `gunicorn -c config/gunicorn.conf.py`.

Everything is read from the environment so one file serves every deployment:
`PORT` (8000), `WEB_CONCURRENCY` worker processes (2), `GUNICORN_THREADS` threads per worker (4).
Size the database pool from it: each thread holds at most one connection, so a web host needs
`WEB_CONCURRENCY x GUNICORN_THREADS` connections (see docs/architecture.md, "Connections").
"""

import os

wsgi_app = "config.wsgi:application"
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104 - inside a container
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
