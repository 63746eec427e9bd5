"""ASGI entry point, as `get_asgi_application()` with tracing set up in between (see config/wsgi.py)."""

import os

import django
from django.core.handlers.asgi import ASGIHandler

from config.tracing import configure_tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)
configure_tracing()  # nothing unless OTEL_EXPORTER_OTLP_ENDPOINT is set
application = ASGIHandler()
