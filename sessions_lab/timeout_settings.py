"""Idle and absolute session timeouts: what ``SESSION_IDLE_S`` and ``SESSION_ABSOLUTE_S`` ask of Django.

Both are whole seconds, or unset (or empty) for today's behaviour; anything
else stops the instance at start-up with a message naming the variable
(``settings.py`` turns the ``ValueError`` into ``ImproperlyConfigured``).

- **Idle** (``SESSION_IDLE_S``, ``--session-idle``): a login that sends no
  request for longer is over. The session modes make it the session's age
  (``SESSION_COOKIE_AGE``: the store's expiry, the signed cookie's max age,
  the browser cookie's), refreshed by every request that uses the session
  (``shop.timeouts.IdleTimeoutMiddleware``). ``jwt`` makes it the refresh
  token's lifetime: every refresh rotates it, so a client that keeps
  refreshing keeps it alive, and one silent for longer finds it expired.
  Its access token lives a quarter of that at most, so an active client
  refreshes well within the limit: an access token's short life alone
  limits nothing while a refresh still works.
- **Absolute** (``SESSION_ABSOLUTE_S``, ``--session-absolute``): a login
  older than this is over, however active. Nothing here but the number: the
  shop records the login's time (in the session, or a ``login_at`` claim of
  the token pair) and refuses it past the limit (``shop/timeouts.py``).

Applied before the session mode (``settings.py``): none of these settings is
one a mode sets. Nothing here imports Django.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

IDLE = "SESSION_IDLE_S"
ABSOLUTE = "SESSION_ABSOLUTE_S"
# The access token lives at most this share of the idle limit: a client that
# refreshes when it expires renews the refresh token at least this often.
ACCESS_SHARE_OF_IDLE = 4
UNSET_MEANS = {
    IDLE: "no idle limit: a session lasts SESSION_COOKIE_AGE after its last change, "
    "a refresh token a day",
    ABSOLUTE: "no absolute limit",
}


def seconds_or_none(env: Mapping[str, str], name: str) -> int | None:
    """``env[name]`` as a positive whole number of seconds; None when unset or empty.

    Strict (ASCII digits only): "1.5", "-3", "0" or "1_000" stop the instance
    rather than mean something nobody asked for.
    """
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) == 0:
        raise ValueError(
            f"{name}={raw!r}: expected a whole number of seconds above 0, "
            f"or unset ({UNSET_MEANS[name]})."
        )
    return int(raw)


def token_lifetimes(simple_jwt: Mapping[str, Any], idle: int) -> dict[str, timedelta]:
    """The token lifetimes that make ``idle`` seconds without a refresh the end of a login."""
    access = min(
        simple_jwt["ACCESS_TOKEN_LIFETIME"],
        # Whole seconds, at least one: a JWT's exp is a whole second.
        timedelta(seconds=max(1, idle // ACCESS_SHARE_OF_IDLE)),
    )
    return {"ACCESS_TOKEN_LIFETIME": access, "REFRESH_TOKEN_LIFETIME": timedelta(seconds=idle)}


def timeout_settings(env: Mapping[str, str], simple_jwt: Mapping[str, Any]) -> dict[str, Any]:
    """The settings the timeouts in ``env`` need, given ``SIMPLE_JWT`` as it stands without them.

    Always ``SESSION_IDLE_S`` and ``SESSION_ABSOLUTE_S`` (None: off; the
    shop's middleware removes itself then); with an idle limit, the session
    age and the token lifetimes too.
    """
    idle = seconds_or_none(env, IDLE)
    fragment: dict[str, Any] = {IDLE: idle, ABSOLUTE: seconds_or_none(env, ABSOLUTE)}
    if idle is not None:
        fragment["SESSION_COOKIE_AGE"] = idle
        fragment["SIMPLE_JWT"] = {**simple_jwt, **token_lifetimes(simple_jwt, idle)}
    return fragment
