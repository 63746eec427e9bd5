"""Token endpoints (simplejwt), rate-limited per IP (`TokenRateThrottle`, `RATELIMIT_TOKEN`).

Who holds tokens and for how long (docs/api.md, "Authentication and roles"):

- Only API clients obtain tokens: an active user with an API role that is neither staff nor a superuser
  (`api_client_can_authenticate`, simplejwt's `USER_AUTHENTICATION_RULE`). Staff use the admin.
- Every token carries a digest of the client's password hash (simplejwt's `CHECK_REVOKE_TOKEN`), so a
  password change refuses every access and refresh token issued before it. `JWTAuthentication` compares
  it with the user row it reads anyway: no extra query per request.
- Refresh tokens rotate and are single-use: a refresh blacklists the token it was given (simplejwt's
  `token_blacklist`) and answers a new one. Two refreshes racing with one token cannot both win: the
  blacklist row is unique per token, and the one that did not create it is refused.
"""

import hmac
from typing import Any

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework_simplejwt import serializers as jwt_serializers
from rest_framework_simplejwt import views as jwt_views
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings

# Used through `_default_manager`: the type stubs take these models for abstract (no `objects`).
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.utils import datetime_from_epoch, get_md5_hash_password

from accounts.models import User
from config.api.serializers import StrictSerializer
from config.api.throttling import TokenRateThrottle


def api_client_can_authenticate(user: Any) -> bool:
    """simplejwt's `USER_AUTHENTICATION_RULE`: tokens are for active API clients, never for staff or superusers."""
    return bool(
        user is not None
        and user.is_active
        and not user.is_staff
        and not user.is_superuser
        and getattr(user, "api_role", "")
    )


def _password_unchanged(token: jwt_serializers.RefreshToken, user: User) -> bool:
    claimed = token.get(api_settings.REVOKE_TOKEN_CLAIM)
    return isinstance(claimed, str) and hmac.compare_digest(claimed, get_md5_hash_password(user.password))


class TokenObtainSerializer(StrictSerializer, jwt_serializers.TokenObtainPairSerializer):
    """simplejwt's username and password exchange, refusing unknown fields as every body of the API does."""


class RotatingTokenRefreshSerializer(StrictSerializer, jwt_serializers.TokenRefreshSerializer):
    """A refresh that checks the client still may hold tokens, spends the refresh token and answers a new pair.

    Every refusal is `TokenError` (401 `token_invalid`): an unknown, deleted, deactivated or promoted client, a
    password changed since the token was issued, a token already used.
    """

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        refresh = self.token_class(attrs["refresh"])  # signature, expiry, type and the blacklist
        user_id = str(refresh.get(api_settings.USER_ID_CLAIM, ""))
        user = User.objects.filter(pk=int(user_id)).first() if user_id.isascii() and user_id.isdigit() else None
        if user is None or not api_client_can_authenticate(user) or not _password_unchanged(refresh, user):
            raise TokenError("Token is invalid")
        with transaction.atomic():
            spent, _ = OutstandingToken._default_manager.get_or_create(
                jti=refresh[api_settings.JTI_CLAIM],
                defaults={
                    "user": user,
                    "token": str(refresh),
                    "created_at": datetime_from_epoch(refresh["iat"]) if "iat" in refresh else None,
                    "expires_at": datetime_from_epoch(refresh["exp"]),
                },
            )
            _, first_use = BlacklistedToken._default_manager.get_or_create(token=spent)
            if not first_use:  # a concurrent refresh with the same token won
                raise TokenError("Token is blacklisted")
            refresh.set_jti()
            refresh.set_exp()
            refresh.set_iat()
            OutstandingToken._default_manager.create(
                user=user,
                jti=refresh[api_settings.JTI_CLAIM],
                token=str(refresh),
                created_at=refresh.current_time,
                expires_at=datetime_from_epoch(refresh["exp"]),
            )
        return {"access": str(refresh.access_token), "refresh": str(refresh)}


# The bodies as the serializers take them: no field blank, no NUL (the JSON parser refuses one anywhere).
# Not blank once DRF trims it (whitespace alone is "may not be blank"), and no NUL.
_CREDENTIAL = {"type": "string", "minLength": 1, "pattern": "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"}
_TOKEN_REQUEST = {
    "type": "object",
    "required": ["username", "password"],
    "properties": {"username": _CREDENTIAL, "password": _CREDENTIAL},
    "additionalProperties": False,
}
_REFRESH_REQUEST = {
    "type": "object",
    "required": ["refresh"],
    "properties": {"refresh": _CREDENTIAL},
    "additionalProperties": False,
}


class TokenObtainView(jwt_views.TokenObtainPairView):
    """Exchange an API client's username and password for an access and a refresh token."""

    serializer_class = TokenObtainSerializer
    throttle_classes = (TokenRateThrottle,)
    throttle_scope = "auth.token"

    @extend_schema(tags=["auth"], request={"application/json": _TOKEN_REQUEST})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)


class TokenRefreshView(jwt_views.TokenRefreshView):
    """Exchange a refresh token for a new access token and a new refresh token (the one sent is spent)."""

    serializer_class = RotatingTokenRefreshSerializer
    throttle_classes = (TokenRateThrottle,)
    throttle_scope = "auth.refresh"

    @extend_schema(tags=["auth"], request={"application/json": _REFRESH_REQUEST})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)
