"""The engine of the modes that keep sessions in a cache (sticky, redis, memcached): Django's,
changed in two places, and able to move a session's expiry alone.

**Each session stored as the session serializer writes it.** Django's cache
engine hands the cache the session's dictionary, which the cache pickles
(django-redis, local memory) on its own: the session serializer is never
asked, so it could not encrypt (``shop.sessions.encryption``). Here the
engine's cache is wrapped in ``SerializedSessions``, which hands the cache
the serializer's bytes and reads them back through it: JSON, or a Fernet
token with keys set. Redis keeps those bytes as they are (``KeptAsBytes``,
the session caches' django-redis serializer), and so does memcached, so
what a store holds is what the inspector and ``sessions-lab attack`` show.
A value the serializer cannot read (another key, or none) reads as no
session. ``shop.sessions.cached_db`` keeps its Redis copy the same way.

**An unreachable Redis is an error.** Django's cache backend treats any
error while loading a session as "no session" (it guards against
memcached's invalid keys, ticket #17810). With Redis holding the only copy,
that turns a Redis outage into every visitor looking logged out — and a
cart write in that state starts a fresh, empty session. Here an unreachable
Redis is an error (the request fails with a 5xx: a 503 that says so, from
``shop.views.server_error``), so when Redis comes back with its data,
nobody has lost anything. The same goes for a logout while Redis is
unreachable: loading the session fails before anything is deleted, so the
answer is a 503 ("could not log you out") and the session is still valid
when Redis returns — the user was told. Saving, deleting and ``exists`` are
Django's, which already let a Redis error through, in both their sync and
async forms; ``aload`` is Django's own async read, so it gets the same
change as ``load``. Local memory and memcached raise no Redis error: for
them only the first change applies.

**Moving the expiry alone** (``touch_expiry``, for ``SESSION_IDLE_S``:
``shop.timeouts.refresh_expiry``): the cache's own ``touch`` (a PEXPIRE in
Redis, a memcached TOUCH, a new deadline in local memory), never the data,
so a request that only read a session cannot save what it read over a
concurrent change. A key the cache no longer holds (a logout meanwhile, an
eviction) is not brought back. Errors are the cache's, as for a save.
"""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends import cache
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django_redis.serializers.pickle import PickleSerializer

from shop.sessions.errors import REDIS_DOWN, UNREACHABLE

__all__ = ["UNREACHABLE", "KeptAsBytes", "SerializedSessions", "SessionStore"]


class SessionStore(cache.SessionStore):
    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self._cache = SerializedSessions(self._cache, self.serializer)

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

    def touch_expiry(self) -> bool:
        """Move this loaded session's expiry to now + its age, its data untouched.

        False if the cache holds no such session any more: nothing is stored then.
        """
        if self.session_key is None:
            return False
        return bool(self._cache.touch(self.cache_key, self.get_expiry_age()))

    def _loaded(self, session_data: dict[str, Any] | None) -> dict[str, Any]:
        if session_data is not None:
            return session_data
        self._session_key = None
        return {}


class SerializedSessions:
    """A session engine's cache, holding each session as the session serializer's bytes.

    ``get`` answers the session (None for a miss, or for a value the
    serializer cannot read: no session); ``set`` and ``add`` take one. The
    rest (``delete``, ``touch``, ``has_key``, ``make_key``…) is the cache's own.
    """

    def __init__(self, cache: BaseCache, serializer: type) -> None:
        self._cache = cache
        self._serializer = serializer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cache, name)

    def __contains__(self, key: str) -> bool:
        return key in self._cache

    def get(self, key: str, default: Any = None) -> Any:
        return self._session(self._cache.get(key), default)

    async def aget(self, key: str, default: Any = None) -> Any:
        return self._session(await self._cache.aget(key), default)

    def set(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT) -> None:
        self._cache.set(key, self._serializer().dumps(value), timeout)

    async def aset(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT) -> None:
        await self._cache.aset(key, self._serializer().dumps(value), timeout)

    def add(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT) -> bool:
        return self._cache.add(key, self._serializer().dumps(value), timeout)

    async def aadd(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT) -> bool:
        return await self._cache.aadd(key, self._serializer().dumps(value), timeout)

    def _session(self, stored: Any, default: Any) -> Any:
        if not isinstance(stored, bytes):  # a miss, or a dictionary an older engine stored
            return default
        try:
            return self._serializer().loads(stored)
        except ValueError:  # unreadable (shop.sessions.encryption warned why): no session
            return default


# Pickle's protocol 2 and later begin with its PROTO opcode; a session's JSON
# begins with "{", a Fernet token with "g".
PICKLED = b"\x80"


class KeptAsBytes(PickleSerializer):
    """django-redis's serializer for the session caches: bytes kept as they are, anything else
    pickled as by default. So Redis holds a session as the session serializer wrote it."""

    def dumps(self, value: Any) -> bytes:
        return value if isinstance(value, bytes) else super().dumps(value)

    def loads(self, value: bytes) -> Any:
        return super().loads(value) if value.startswith(PICKLED) else value
