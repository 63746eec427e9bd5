"""Test-only URLs for the hostile-input tests: a CSRF-protected plain view under /api/, and the project's handlers."""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401 - the project's error handlers
from config.urls import urlpatterns as project_urlpatterns


def csrf_protected(request: HttpRequest) -> JsonResponse:
    """A plain Django view (not DRF, not exempt): CsrfViewMiddleware guards its POSTs."""
    return JsonResponse({"ok": True})


urlpatterns = [
    path("api/v1/_test/csrf-protected/", csrf_protected),
    *project_urlpatterns,
]
