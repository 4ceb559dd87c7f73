"""Idle and absolute session timeouts, the shop's half: refresh a session on use, end an old login.

The limits come from the environment (``sessions_lab/timeout_settings.py``:
``SESSION_IDLE_S``, ``SESSION_ABSOLUTE_S``, None when off). Each mode
enforces them the way it can:

- **Idle, session modes**: the session's age is the idle limit, and
  ``IdleTimeoutMiddleware`` saves every session a request used, so its
  expiry moves on with each use: the database row's ``expire_date``, the
  TTL in Redis, memcached or the replicated Valkey, the local-memory
  timeout, the signed cookie's timestamp (checked against the same age),
  and the browser cookie's Max-Age. A session silent for longer expires
  where it lives. Django's ``SESSION_SAVE_EVERY_REQUEST`` would save
  after *every* request instead, including those that never read the
  session: the catalog and ``/healthz`` would write to the store (and
  fail while it is down, which they otherwise survive), an expired cookie
  sent there would get a new empty session stored, and in ``cached_db``
  mode every read would be a change, refused while Redis is down.
- **Idle, jwt**: the refresh token's lifetime (the settings alone).
- **Absolute, session modes**: the login's time is recorded in the session
  (``remember_login_time``, on ``user_logged_in``) and
  ``AbsoluteTimeoutMiddleware`` logs out a session older than the limit.
  The time rides in the session itself, so in ``cookie`` mode a copied
  cookie is refused too.
- **Absolute, jwt**: ``shop.jwt_cookies`` puts the login's time in the
  token pair (``login_at``), which simplejwt keeps when it rotates the
  refresh token and copies into each new access token, and refuses either
  token once that time is older than the limit (``past_absolute_limit``).

A login with no recorded time while an absolute limit is set (made before
the limit was) cannot show it is young enough: it is over too. The time is
whole seconds, as a token's ``iat``. With a limit unset, each middleware
removes itself at start-up (``MiddlewareNotUsed``): nothing runs per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY, logout
from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse

from shop.middleware import is_personal
from shop.sessions.errors import UNREACHABLE

logger = logging.getLogger("shop.sessions")

LOGIN_AT = "_login_at"  # the session's key: when its user logged in (Unix seconds)
LOGIN_AT_CLAIM = "login_at"  # the same in a token pair, kept across refreshes
TOO_OLD = "This login is older than SESSION_ABSOLUTE_S: log in again."


def login_time() -> int:
    """Now, as a login's recorded time: whole Unix seconds, like a token's ``iat``."""
    return int(time.time())


def past_absolute_limit(login_at: Any) -> bool:
    """Whether a login made at ``login_at`` has outlived ``SESSION_ABSOLUTE_S`` (never, unset)."""
    limit = settings.SESSION_ABSOLUTE_S
    if limit is None:
        return False
    if not isinstance(login_at, int) or isinstance(login_at, bool):
        return True  # no recorded time (a login from before the limit): cannot be trusted
    return time.time() - login_at > limit


def remember_login_time(*, request: Any, **_signal: Any) -> None:
    """``user_logged_in``: record when, in the session modes, while an absolute limit is set."""
    session = getattr(request, "session", None)
    if session is not None and settings.SESSION_ABSOLUTE_S is not None:
        session[LOGIN_AT] = login_time()


class AbsoluteTimeoutMiddleware:
    """Logs out a session whose login is older than ``SESSION_ABSOLUTE_S``, before the view runs.

    After ``AuthenticationMiddleware``: Django's ``logout`` ends the session
    (the store forgets it, the cookie is deleted) and the request goes on
    anonymous. Public answers (the catalog, ``/healthz``) never load the
    session, so they keep answering while its store is down; the check waits
    for the next personal request, the first that could act as the user.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if settings.SESSION_ABSOLUTE_S is None:
            raise MiddlewareNotUsed("SESSION_ABSOLUTE_S is unset")
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_personal(request.path) and _outlived(request.session):
            # cached_db refuses while Redis is down (a 503): never served as the user.
            logout(request)
        return self.get_response(request)


def _outlived(session: SessionBase) -> bool:
    return SESSION_KEY in session and past_absolute_limit(session.get(LOGIN_AT))


class IdleTimeoutMiddleware:
    """Saves each session a request used, so that it expires ``SESSION_IDLE_S`` after its last use.

    Inside ``SessionMiddleware``, which saves a session marked changed and
    sends its cookie again with a new Max-Age. Not for a session the request
    never read, an empty one (logged out, or expired: nothing to keep), or a
    5xx answer (Django saves nothing then either).

    The cost, only with an idle limit: every request that uses a session
    writes it back to its store — a database UPDATE in ``db`` and
    ``cached_db`` (and a Redis DELETE and SET), a SET in the cache modes and
    ``replicated`` — and in ``cookie`` mode re-signs the cookie, so a new
    cookie every second is checked in full once (``shop.sessions.cookie``
    remembers each). ``cached_db`` refuses any change while Redis cannot be
    reached: the request is still answered from the database row, and the
    session's expiry moves on at its next use once Redis is back.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if settings.SESSION_IDLE_S is None:
            raise MiddlewareNotUsed("SESSION_IDLE_S is unset")
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code < 500:
            refresh_expiry(request.session)
        return response


def refresh_expiry(session: SessionBase) -> None:
    """Mark a session this request used as changed, so that it is saved with a new expiry."""
    if not session.accessed or session.modified or session.is_empty():
        return
    try:
        session.modified = True
    except UNREACHABLE:
        logger.warning("session expiry not refreshed now: its store refused the change")
