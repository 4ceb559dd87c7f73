"""The OpenAPI schema as the running mode serves it: its endpoints only, and every answer they give.

drf-spectacular reads the views and serializers. What it cannot see is decided
here from the very classes that decide the behaviour, never from a list kept
beside them, so the schema cannot drift from the server:

- which endpoints the mode serves: the view's ``served_in(mode)``, which is
  also what makes the view answer 404 in the other modes;
- who may call without a login: the view's own permissions, asked about an
  anonymous request in the current mode (an anonymous cart is fine in the
  session modes, not in ``jwt``);
- the errors that come from authentication rather than from the view: no login
  (401), a bad bearer token (401, in every view that reads one), a cookie-carried
  write without its CSRF token (403), a session store (Redis) that cannot be
  reached (503: on any call where Redis holds the only copy, on a change where
  it is a cache in front of the database).

Each view declares the rest (its success body, 400, 404, 412, 429, the If-Match
and ETag headers of ``shop.api.conditional``) with ``extend_schema``.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from rest_framework.permissions import SAFE_METHODS

from sessions_lab.modes import Mode, StoreServer, get_mode
from shop.api.authentication import (
    BearerAuthentication,
    CsrfCheckedAuthentication,
    SessionAuthentication,
)
from shop.api.serializers import ErrorSerializer

CSRF = "csrfToken"
CSRF_DEFINITION = {
    "type": "apiKey",
    "in": "header",
    "name": "X-CSRFToken",
    "description": "The value of the csrftoken cookie, which GET /api/whoami/ sets; "
    "send the cookie too. Needed by every write a cookie carries.",
}
RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer", "minimum": 1},
        "description": "Seconds to wait before trying again.",
    }
}

Requirement = dict[str, list[Any]]


def current_mode() -> Mode:
    return get_mode(settings.SESSION_MODE)


def _with_csrf_on_writes(requirement: Requirement, auto_schema: AutoSchema) -> Requirement:
    return requirement if auto_schema.method in SAFE_METHODS else {**requirement, CSRF: []}


class CookieScheme(OpenApiAuthenticationExtension):
    """A credential in a cookie: its writes carry the CSRF token as well."""

    scheme: str  # the scheme's name in the schema
    cookie_setting: str  # the Django setting that names the cookie

    def get_security_definition(self, auto_schema: AutoSchema) -> list[dict[str, Any]]:
        cookie_name = getattr(settings, self.cookie_setting)
        return [{"type": "apiKey", "in": "cookie", "name": cookie_name}, CSRF_DEFINITION]

    def get_security_requirement(self, auto_schema: AutoSchema) -> Requirement:
        return _with_csrf_on_writes({self.scheme: []}, auto_schema)


class SessionScheme(CookieScheme):
    target_class = "shop.api.authentication.SessionAuthentication"
    scheme, cookie_setting = "sessionCookie", "SESSION_COOKIE_NAME"
    name = [scheme, CSRF]


class JWTCookieScheme(CookieScheme):
    target_class = "shop.api.authentication.JWTCookieAuthentication"
    scheme, cookie_setting = "jwtCookie", "JWT_ACCESS_COOKIE"
    name = [scheme, CSRF]


class BearerScheme(OpenApiAuthenticationExtension):
    target_class = "shop.api.authentication.BearerAuthentication"
    name = "jwtBearer"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


class ShopSchema(AutoSchema):
    """drf-spectacular's AutoSchema, told what the mode and the authentication decide."""

    def is_excluded(self) -> bool:
        served_in = getattr(self.view, "served_in", None)
        return super().is_excluded() or (served_in is not None and not served_in(current_mode()))

    def get_auth(self) -> list[Requirement]:
        # drf-spectacular offers the anonymous `{}` only to AllowAny views; the
        # shop's permissions depend on the mode, so they are asked instead.
        if not self.view.get_authenticators():
            return []  # the view reads no credential: nothing to require
        requirements = [requirement for requirement in super().get_auth() if requirement]
        if self._lets_anonymous_in():
            requirements.append({CSRF: []} if self._checks_csrf_without_login() else {})
        return requirements

    def get_operation(
        self, path: str, path_regex: str, path_prefix: str, method: str, registry: Any
    ) -> dict[str, Any] | None:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses: dict[str, Any] = operation["responses"]
        error = self.resolve_serializer(ErrorSerializer, "response").ref
        for status, reasons in self._errors_from_authentication().items():
            answer = responses.setdefault(
                str(status), {"content": {"application/json": {"schema": error}}}
            )
            answer["description"] = " ".join(filter(None, [answer.get("description"), *reasons]))
        for status in ("429", "503"):
            if status in responses:
                responses[status]["headers"] = RETRY_AFTER
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _lets_anonymous_in(self) -> bool:
        anonymous = SimpleNamespace(user=AnonymousUser(), method=self.method, auth=None)
        return all(
            permission.has_permission(cast(Any, anonymous), self.view)
            for permission in self.view.get_permissions()
        )

    def _checks_csrf_without_login(self) -> bool:
        """Whether an anonymous write must carry the CSRF token too (a session: yes)."""
        return self.method not in SAFE_METHODS and any(
            isinstance(authenticator, SessionAuthentication)
            for authenticator in self.view.get_authenticators()
        )

    def _errors_from_authentication(self) -> dict[int, list[str]]:
        authenticators = self.view.get_authenticators()
        errors: dict[int, list[str]] = defaultdict(list)
        if not self._lets_anonymous_in():
            errors[401].append("No login: this call needs one.")
        if any(isinstance(a, BearerAuthentication) for a in authenticators):
            errors[401].append("An invalid, expired or blacklisted access token.")
        if self.method not in SAFE_METHODS and any(
            isinstance(a, CsrfCheckedAuthentication) for a in authenticators
        ):
            errors[403].append("A cookie-carried write without the CSRF token (X-CSRFToken).")
        if self._can_find_redis_down():
            errors[503].append("The session store (Redis) cannot be reached: nothing was changed.")
        return errors

    def _can_find_redis_down(self) -> bool:
        mode = current_mode()
        reads_the_session = any(
            isinstance(authenticator, SessionAuthentication)
            for authenticator in self.view.get_authenticators()
        )
        if mode.store_server is not StoreServer.REDIS or not reads_the_session:
            return False
        # The only copy in Redis: every read fails. A copy of the database's
        # row: reads fall back to the row, a change is refused.
        return not mode.backed_by_database or self.method not in SAFE_METHODS
