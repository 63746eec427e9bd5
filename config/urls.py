"""URL configuration."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import health, metrics
from config.api import auth
from config.api.views import api_not_found, handler400, handler403, handler404, handler500

api_v1: list[URLPattern | URLResolver] = [
    path("auth/token/", auth.TokenObtainView.as_view(), name="token-obtain"),
    path("auth/token/refresh/", auth.TokenRefreshView.as_view(), name="token-refresh"),
    path("webhooks/stripe/", include("webhooks.urls")),
    path("test_helpers/", include("webhooks.test_helpers")),
    path("", include("refunds.urls")),
    path("", include("customers.urls")),
    path("", include("subscriptions.urls")),
    path("", include("disputes.urls")),
    path("", include("payments.urls")),
    path("", include("events.urls")),
]

urlpatterns = [
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/v1/", include(api_v1)),
    re_path(r"^api/", api_not_found),
    path("admin/", admin.site.urls),
]

# Under /api/ the envelope, elsewhere Django's pages (config/api/views.py).
__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
