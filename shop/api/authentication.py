"""How an API request proves who it is, per mode, and when it must carry a CSRF token.

A write carried by a cookie (session or JWT cookie, anonymous or logged in)
must send the CSRF token; a write carried by ``Authorization: Bearer``
need not, because a browser never attaches that header on its own. Each
class names an ``authenticate_header``, so a missing login is 401, not 403.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import authentication
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.settings import api_settings as jwt_settings

# The remembered token check is the shop's, shared with the pages' middleware
# (so the shop never imports its API); named here too, where the API's
# classes and their tests have always found it.
from shop.jwt_cookies import VERIFIED_TOKENS as VERIFIED_TOKENS
from shop.jwt_cookies import RememberedJWTAuthentication as RememberedJWTAuthentication


class CsrfCheckedAuthentication(authentication.SessionAuthentication):
    """Cookie-carried authentication: every unsafe request must carry the CSRF token."""

    def enforce_csrf(self, request: Request) -> None:
        # Check the Django request: the header token is all we need, and
        # asking DRF's request for form data would be a 415 for a bodyless POST.
        super().enforce_csrf(request._request)


class SessionAuthentication(CsrfCheckedAuthentication):
    """Django's session login, with CSRF enforced on every unsafe request, anonymous ones too."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        if request.method not in SAFE_METHODS:
            self.enforce_csrf(request)
        user = getattr(request._request, "user", None)
        if user is None or not user.is_active:
            return None
        return (user, None)

    def authenticate_header(self, request: Request) -> str:
        return 'Session realm="api"'


class BearerAuthentication(RememberedJWTAuthentication):
    """``Authorization: Bearer <access token>``; an invalid token is 401, never anonymous."""

    def user_id(self, request: Request) -> Any | None:
        """The user id a valid bearer token names, without loading the user; None without a token."""
        header = self.get_header(request)
        raw_token = self.get_raw_token(header) if header is not None else None
        if raw_token is None:
            return None
        token = self.get_validated_token(raw_token)
        try:
            return token[jwt_settings.USER_ID_CLAIM]
        except KeyError:
            raise InvalidToken("Token contained no recognizable user identification") from None


class JWTCookieAuthentication(CsrfCheckedAuthentication):
    """The HttpOnly token cookies the HTML pages use in ``jwt`` mode, CSRF-checked on writes."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        cookies = request._request.COOKIES
        if settings.JWT_ACCESS_COOKIE not in cookies and settings.JWT_REFRESH_COOKIE not in cookies:
            return None
        if request.method not in SAFE_METHODS:
            self.enforce_csrf(request)
        user = request._request.user
        return (user, None) if user.is_authenticated else None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
