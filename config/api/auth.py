"""Token endpoints (simplejwt), rate-limited per IP (`TokenRateThrottle`, `RATELIMIT_TOKEN`)."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework_simplejwt import views as jwt_views

from config.api.throttling import TokenRateThrottle


class TokenObtainView(jwt_views.TokenObtainPairView):
    """Exchange an API client's username and password for an access and a refresh token."""

    throttle_classes = (TokenRateThrottle,)
    throttle_scope = "auth.token"

    @extend_schema(tags=["auth"])
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)


class TokenRefreshView(jwt_views.TokenRefreshView):
    """Exchange a refresh token for a new access token."""

    throttle_classes = (TokenRateThrottle,)
    throttle_scope = "auth.refresh"

    @extend_schema(tags=["auth"])
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)
