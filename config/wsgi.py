"""WSGI entry point (gunicorn config.wsgi), as `get_wsgi_application()` with tracing set up in between.

Tracing starts after `django.setup()` (settings, `.env` and logging are in place) and before the handler
loads the middleware (the Django instrumentation adds one). gunicorn imports this module in each worker
after the fork (no `preload_app`), so each worker process has its own span exporter thread.
"""

import os

import django
from django.core.handlers.wsgi import WSGIHandler

from config.tracing import configure_tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)
configure_tracing()  # nothing unless OTEL_EXPORTER_OTLP_ENDPOINT is set
application = WSGIHandler()
