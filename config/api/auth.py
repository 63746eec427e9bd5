"""Token endpoints (simplejwt), rate-limited per IP."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework_simplejwt import views as jwt_views

from config.api.ratelimit import ip_key, rate_limited


class TokenObtainView(jwt_views.TokenObtainPairView):
    """Exchange an API client's username and password for an access and a refresh token."""

    @extend_schema(tags=["auth"])
    @rate_limited(group="auth.token", rate_setting="RATELIMIT_TOKEN", key=ip_key)
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)


class TokenRefreshView(jwt_views.TokenRefreshView):
    """Exchange a refresh token for a new access token."""

    @extend_schema(tags=["auth"])
    @rate_limited(group="auth.refresh", rate_setting="RATELIMIT_TOKEN", key=ip_key)
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)
