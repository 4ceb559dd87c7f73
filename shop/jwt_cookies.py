"""``jwt`` mode for the HTML pages: the tokens ride in HttpOnly cookies.

API clients send ``Authorization: Bearer``; a browser cannot be trusted to
keep a token out of reach of scripts, so the pages keep the access and
refresh tokens in HttpOnly, SameSite=Lax cookies — which makes them
cookie-authenticated, so their form posts carry CSRF tokens like any other.
An expired access token is refreshed from the refresh cookie (rotating it).

With ``SESSION_ABSOLUTE_S`` set, a token pair carries the time of its login
(``login_at``, from ``issue_tokens``): simplejwt keeps a refresh token's
claims when it rotates it and copies them into each new access token, so
every token of that login carries it, and each is refused once that login
is older than the limit (``shop/timeouts.py``): the access token on every
use, remembered or not, and a refresh (``LoginLimitedRefreshToken``).

The access-token check itself (``RememberedJWTAuthentication``) lives here
too, and the API's bearer authentication builds on it: the pages are the
shop's core and the API one of its clients, so the API imports from here and
never the other way round (no import cycle between the shop and its API).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject
from rest_framework.exceptions import AuthenticationFailed, ValidationError
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import AccessToken, BlacklistMixin, RefreshToken, Token

from shop.timeouts import LOGIN_AT_CLAIM, TOO_OLD, login_time, past_absolute_limit
from shop.users import token_user
from shop.verified import VerifiedValues

# Access tokens this process has verified (see shop/verified.py). Access tokens
# are never revoked (simplejwt blacklists refresh and sliding tokens, which are
# never remembered), and whether the user may still log in is read from the
# database on every request, so a remembered check answers as a new one would.
# Every request gets the same token object: read it, never change it.
VERIFIED_TOKENS: VerifiedValues[Token] = VerifiedValues()


class RememberedJWTAuthentication(JWTAuthentication):
    """simplejwt's token check, done once per token and process (``VERIFIED_TOKENS``)."""

    def get_validated_token(self, raw_token: bytes) -> Token:
        token = VERIFIED_TOKENS.get(raw_token)
        if token is None:
            token = super().get_validated_token(raw_token)
            if not isinstance(token, BlacklistMixin):  # a blacklist is checked every time
                # simplejwt's rule: expired once ``exp`` plus the leeway has passed.
                leeway = token.get_token_backend().get_leeway().total_seconds()
                VERIFIED_TOKENS.add(raw_token, token, expires_at=token["exp"] + leeway)
        if past_absolute_limit(token.get(LOGIN_AT_CLAIM)):  # on every use: remembered or not
            raise InvalidToken(TOO_OLD)
        return token

    def get_user(self, validated_token: Token) -> Any:
        # simplejwt's checks, the user read with one plain query (shop.users),
        # where its settings name the user by primary key and revoke nothing.
        if jwt_settings.CHECK_REVOKE_TOKEN or jwt_settings.USER_ID_FIELD != "id":
            return super().get_user(validated_token)
        return token_user(validated_token)


class LoginLimitedRefreshToken(RefreshToken):
    """simplejwt's refresh token, refused once the login it carries is older than the limit."""

    def verify(self) -> None:
        super().verify()  # signature, exp, blacklist
        if past_absolute_limit(self.get(LOGIN_AT_CLAIM)):
            raise TokenError(TOO_OLD)


class TokenRefresh(TokenRefreshSerializer):
    """simplejwt's refresh (rotating, blacklisting the old one), within the absolute limit."""

    token_class = LoginLimitedRefreshToken


def set_token_cookies(response: HttpResponse, access: str, refresh: str) -> None:
    common = {
        "httponly": True,
        "samesite": "Lax",
        "secure": settings.COOKIE_SECURE,
        "path": "/",
    }
    refresh_age = int(settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"].total_seconds())
    response.set_cookie(settings.JWT_ACCESS_COOKIE, access, max_age=refresh_age, **common)
    response.set_cookie(settings.JWT_REFRESH_COOKIE, refresh, max_age=refresh_age, **common)


def delete_token_cookies(response: HttpResponse) -> None:
    for name in (settings.JWT_ACCESS_COOKIE, settings.JWT_REFRESH_COOKIE):
        response.delete_cookie(name, path="/", samesite="Lax")


def issue_tokens(user: Any) -> tuple[str, str]:
    """A new login's access and refresh token (the API's token view, the pages' login)."""
    refresh = RefreshToken.for_user(user)
    if settings.SESSION_ABSOLUTE_S is not None:
        refresh[LOGIN_AT_CLAIM] = login_time()  # before the access token copies the claims
    return str(refresh.access_token), str(refresh)


def blacklist_refresh(raw_refresh: str) -> None:
    """Revoke a refresh token; an already invalid one needs no revoking."""
    with contextlib.suppress(TokenError):
        RefreshToken(raw_refresh).blacklist()


class JWTCookieMiddleware:
    """Sets ``request.user`` from the access cookie, refreshing it when it has expired."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.authentication = RememberedJWTAuthentication()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        outcome: dict[str, Any] = {}
        request.jwt = outcome  # type: ignore[attr-defined]
        request.user = SimpleLazyObject(lambda: self._user(request, outcome))  # type: ignore[assignment]
        response = self.get_response(request)
        if settings.JWT_ACCESS_COOKIE in response.cookies:
            return response  # the view logged in or out: its cookies win
        if "new_tokens" in outcome:
            set_token_cookies(response, *outcome["new_tokens"])
        elif outcome.get("invalid"):
            delete_token_cookies(response)
        return response

    def _user(self, request: HttpRequest, outcome: dict[str, Any]) -> Any:
        raw_access = request.COOKIES.get(settings.JWT_ACCESS_COOKIE)
        raw_refresh = request.COOKIES.get(settings.JWT_REFRESH_COOKIE)
        token = self._valid_access(raw_access) if raw_access else None
        if token is None and raw_refresh:
            token = self._refreshed_access(raw_refresh, outcome)
        if token is not None:
            outcome["access"] = token
            try:
                return self.authentication.get_user(token)
            except (InvalidToken, AuthenticationFailed):
                pass  # the user is gone or inactive: fall through to anonymous
        if raw_access or raw_refresh:
            outcome["invalid"] = True
        return AnonymousUser()

    def _valid_access(self, raw: str) -> AccessToken | None:
        try:
            return self.authentication.get_validated_token(raw.encode())
        except (InvalidToken, TokenError):
            return None

    def _refreshed_access(self, raw_refresh: str, outcome: dict[str, Any]) -> AccessToken | None:
        """A new access token from the refresh cookie; the refresh token rotates with it."""
        serializer = TokenRefresh(data={"refresh": raw_refresh})
        try:
            serializer.is_valid(raise_exception=True)
        except (InvalidToken, TokenError, ValidationError, AuthenticationFailed):
            return None
        access = serializer.validated_data["access"]
        outcome["new_tokens"] = (access, serializer.validated_data.get("refresh", raw_refresh))
        return AccessToken(access)
