"""Signed-in (staff) sessions end after ADMIN_SESSION_IDLE_SECONDS idle, and SESSION_COOKIE_AGE after sign-in.

Django's database sessions expire SESSION_COOKIE_AGE after their last write, which slides with activity; and
the cookie, a browser-session cookie (SESSION_EXPIRE_AT_BROWSER_CLOSE), outlives the browser when the browser
restores its tabs. So the session holds two stamps, set at sign-in (`stamp_signed_in`, on `user_logged_in`):
when it signed in, and when it was last used (rewritten once a minute at most, not on every request). Past
either limit the request is served signed out: the admin answers its login page. Requests without a signed-in
session (the API: JWTs, no cookie) cost nothing here.
"""

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY, logout
from django.http import HttpRequest, HttpResponse

SIGNED_IN_AT = "signed_in_at"
LAST_SEEN_AT = "last_seen_at"
LAST_SEEN_RESOLUTION_SECONDS = 60


def stamp_signed_in(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    """`user_logged_in` receiver: the session starts its two clocks (in the same write as the sign-in)."""
    session = getattr(request, "session", None)
    if session is not None:
        session[SIGNED_IN_AT] = session[LAST_SEEN_AT] = int(time.time())


class StaffSessionTimeoutMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = request.session
        if SESSION_KEY in session:
            now = int(time.time())
            signed_in_at = session.setdefault(SIGNED_IN_AT, now)  # a session from before these stamps
            last_seen_at = session.get(LAST_SEEN_AT, now)
            if (
                now - signed_in_at >= settings.SESSION_COOKIE_AGE
                or now - last_seen_at >= settings.ADMIN_SESSION_IDLE_SECONDS
            ):
                logout(request)
            elif now - last_seen_at >= LAST_SEEN_RESOLUTION_SECONDS or LAST_SEEN_AT not in session:
                session[LAST_SEEN_AT] = now
        return self.get_response(request)
