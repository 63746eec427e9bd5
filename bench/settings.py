"""Settings of the HTTP benchmark: the service's own settings, plus the floor views' URL conf."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
