"""Idle and absolute session timeouts, the shop's half: refresh a session on use, end an old login.

The limits come from the environment (``sessions_lab/timeout_settings.py``:
``SESSION_IDLE_S``, ``SESSION_ABSOLUTE_S``, None when off). Each mode
enforces them the way it can:

- **Idle, session modes**: the session's age is the idle limit, and
  ``IdleTimeoutMiddleware`` moves on the expiry of every session a request
  read, without writing its data: the engine's ``touch_expiry`` moves the
  database row's ``expire_date``, the TTL in Redis, memcached or the
  replicated Valkey, the local-memory timeout; the browser cookie is sent
  again with a new Max-Age. In ``cookie`` mode, where the cookie is the
  session, it is re-signed instead (its timestamp, checked against the same
  age). A session silent for longer expires where it lives. Django's
  ``SESSION_SAVE_EVERY_REQUEST`` would save the whole session after
  *every* request instead, including those that never read the session:
  the catalog and ``/healthz`` would write to the store (and fail while it
  is down, which they otherwise survive), an expired cookie sent there
  would get a new empty session stored, in ``cached_db`` mode every read
  would be a change, refused while Redis is down — and a read would save
  what it read over a concurrent write of the same session.
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
from django.utils.http import http_date

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
    """Moves on the expiry of each session a request used: it ends ``SESSION_IDLE_S`` after its last use.

    Inside ``SessionMiddleware``, so it sees the answer first. A session the
    view changed is saved there as always, its cookie sent with a new
    Max-Age: nothing to do here. A session the request only read has its
    expiry moved in its store by the engine's ``touch_expiry``, its data
    never written — a read overlapping a write of the same session (another
    tab, another instance) cannot save the older session over the change
    and roll back its cart — and its cookie is sent again here, as
    ``SessionMiddleware`` would send it (``send_session_cookie``): a client
    that honours the cookie's expiry (a browser, Locust's cookie jar) would
    otherwise drop it ``SESSION_IDLE_S`` after the last *write*, logging out
    a user who only reads. Not for a session the request never read, an
    empty one (logged out, or expired: nothing to keep), or a 5xx answer
    (Django saves nothing then either).

    The cost, only with an idle limit: every request that reads a session
    moves its expiry — one UPDATE of ``expire_date`` in ``db``, that and a
    PEXPIRE in ``cached_db``, a PEXPIRE, a memcached TOUCH or a new
    deadline in the cache modes, an EXPIRE on the primary in ``replicated``
    (no WAIT, even with ``sync``). ``cookie`` mode cannot touch: the cookie
    *is* the session, so a read re-signs it and sends the whole session
    again (a new cookie every second is checked in full once:
    ``shop.sessions.cookie`` remembers each). A read there answered after a
    concurrent write from another tab sends the older session back, and the
    browser keeps whichever cookie came last — the two-tabs race inherent
    to that mode, as between any two of its writes. While a store cannot be
    reached (``UNREACHABLE``: ``cached_db``'s Redis, ``replicated``'s
    primary) the request is still answered: one warning, and the session's
    expiry moves at its next use.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if settings.SESSION_IDLE_S is None:
            raise MiddlewareNotUsed("SESSION_IDLE_S is unset")
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code < 500 and refresh_expiry(request.session):
            send_session_cookie(request, response)
        return response


def refresh_expiry(session: SessionBase) -> bool:
    """Move on the expiry of a session this request read and did not change.

    With the engine's ``touch_expiry`` (every engine of the shop's but the
    signed cookie's): the expiry alone, in the store; True if it moved, and
    the caller sends the cookie again. Otherwise the session is marked
    changed, and ``SessionMiddleware`` saves it whole, cookie and all (False).
    """
    if not session.accessed or session.modified or session.is_empty():
        return False
    touch = getattr(session, "touch_expiry", None)
    try:
        if touch is None:
            session.modified = True
            return False
        return bool(touch())
    except UNREACHABLE:
        logger.warning("session expiry not moved now: its store cannot be reached")
        return False


def send_session_cookie(request: HttpRequest, response: HttpResponse) -> None:
    """Set the session's cookie as ``SessionMiddleware.process_response`` does after a save.

    The same name, value (the session key), Max-Age and Expires (none for a
    session that ends with the browser), domain, path and flags, so a touch
    renews the cookie's expiry exactly as a save would.
    """
    session = request.session
    if session.get_expire_at_browser_close():
        max_age = None
        expires = None
    else:
        max_age = session.get_expiry_age()
        expires = http_date(time.time() + max_age)
    response.set_cookie(
        settings.SESSION_COOKIE_NAME,
        session.session_key,
        max_age=max_age,
        expires=expires,
        domain=settings.SESSION_COOKIE_DOMAIN,
        path=settings.SESSION_COOKIE_PATH,
        secure=settings.SESSION_COOKIE_SECURE or None,
        httponly=settings.SESSION_COOKIE_HTTPONLY or None,
        samesite=settings.SESSION_COOKIE_SAMESITE,
    )
