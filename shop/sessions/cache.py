"""The ``redis`` mode's session engine: Django's cache sessions, minus one silence.

Django's cache backend treats any error while loading a session as "no
session" (it guards against memcached's invalid keys, ticket #17810). With
Redis holding the only copy, that turns a Redis outage into every visitor
looking logged out — and a cart write in that state starts a fresh, empty
session. Here an unreachable Redis is an error (the request fails with a
5xx: a 503 that says so, from ``shop.views.server_error``), so when Redis
comes back with its data, nobody has lost anything.

The same goes for a logout while Redis is unreachable: loading the session
fails before anything is deleted, so the answer is a 503 ("could not log you
out") and the session is still valid when Redis returns — the user was told.
Saving, deleting and ``exists`` are Django's, which already let a Redis
error through, in both their sync and async forms; ``aload`` is Django's
own async read, so it gets the same change as ``load``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends import cache

from shop.sessions.errors import REDIS_DOWN, UNREACHABLE

__all__ = ["UNREACHABLE", "SessionStore"]


class SessionStore(cache.SessionStore):
    def load(self) -> dict[str, Any]:
        try:
            session_data = self._cache.get(self.cache_key)
        except REDIS_DOWN:
            raise
        except Exception:  # an invalid key, as Django's own backend allows for
            session_data = None
        return self._loaded(session_data)

    async def aload(self) -> dict[str, Any]:
        try:
            session_data = await self._cache.aget(await self.acache_key())
        except REDIS_DOWN:
            raise
        except Exception:  # as in load()
            session_data = None
        return self._loaded(session_data)

    def _loaded(self, session_data: dict[str, Any] | None) -> dict[str, Any]:
        if session_data is not None:
            return session_data
        self._session_key = None
        return {}
