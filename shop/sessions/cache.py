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
from django.contrib.sessions.backends.base import UpdateError
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.cache.backends.memcached import PyMemcacheCache
from django_redis.cache import RedisCache
from django_redis.serializers.pickle import PickleSerializer
from pymemcache.client.rendezvous import RendezvousHash

from shop.sessions.errors import REDIS_DOWN, UNREACHABLE

__all__ = [
    "UNREACHABLE",
    "KeptAsBytes",
    "KeptOpenPyMemcacheCache",
    "SerializedSessions",
    "SessionStore",
]


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

    def save(self, must_create: bool = False) -> None:
        """Django's save, without reading the session back to learn that it still exists.

        Django's engine asks ``get`` before it overwrites a session (one deleted
        meanwhile, by a logout elsewhere, must not come back): a whole read, and
        through ``SerializedSessions`` a decryption, on every write. Here the
        cache replaces the value only if the key is there (``SerializedSessions.replace``).
        Creating a session is Django's.
        """
        if self.session_key is None or must_create:
            return super().save(must_create)
        data = self._get_session(no_load=False)
        if not self._cache.replace(self.cache_key, data, self.get_expiry_age()):
            raise UpdateError
        return None

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
    rest (``delete``, ``touch``, ``has_key``, ``make_key``…) is the cache's own; ``replace``
    is a set that never creates.
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

    def replace(self, key: str, value: Any, timeout: Any) -> bool:
        """Store ``value`` under ``key`` only if the key is there; False (nothing stored) if not.

        Redis and memcached do both in one command (``SET … XX``, ``replace``);
        local memory is asked ``has_key`` first.
        """
        data = self._serializer().dumps(value)
        if isinstance(self._cache, RedisCache):
            return bool(self._cache.set(key, data, timeout, xx=True))
        if isinstance(self._cache, PyMemcacheCache):  # memcached's own "replace"
            client = self._cache._cache  # pymemcache's HashClient, as Django's set uses it
            stored = client.replace(
                self._cache.make_and_validate_key(key),
                data,
                self._cache.get_backend_timeout(timeout),
                noreply=False,
            )
            return bool(stored)
        if not self._cache.has_key(key):
            return False
        self._cache.set(key, data, timeout)
        return True

    def _session(self, stored: Any, default: Any) -> Any:
        if not isinstance(stored, bytes):  # a miss, or a dictionary an older engine stored
            return default
        try:
            return self._serializer().loads(stored)
        except ValueError:  # unreadable (shop.sessions.encryption warned why): no session
            return default


class KeptOpenPyMemcacheCache(PyMemcacheCache):
    """Django's pymemcache backend, its connections kept open between requests.

    Django's closes every memcached connection when a request finishes
    ("many clients don't clean up connections properly"), so each request
    connected to its node again: a TCP handshake per session read (see the
    tuning log of docs/performance.md for what it cost).
    pymemcache's pool (``use_pooling``) keeps them, as django-redis keeps its
    own; a connection that breaks is closed by pymemcache and opened again
    on the next use, and a node that fails is retried, then left out, by
    ``HashClient`` as before. The price: a node restarted so fast that no
    request saw it down fails the next command on each connection kept to
    it, once (that request's error), where a fresh connection would not.
    ``cache-node-down`` keeps its node down for seconds, and is unchanged.
    """

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        options = params.setdefault("OPTIONS", {})
        options.setdefault("hasher", RememberingRendezvousHash)
        super().__init__(server, params)

    def close(self, **kwargs: Any) -> None:
        pass


class RememberingRendezvousHash(RendezvousHash):
    """pymemcache's rendezvous hashing, each key's node remembered until the nodes change.

    Choosing a key's node hashes the key with every node, in pymemcache's
    pure-Python murmur3: the largest cost of a ``memcached`` session read in
    one process, paid twice a request (the read, and ``X-Session-Node``). The
    same key always gets the same node while the nodes stay the same, so the
    answer is kept, under the nodes' generation: a node added or removed
    (``HashClient`` leaves a failed node out, and takes it back) starts a new
    one. Bounded: past ``MAX_KEYS`` it starts over.
    """

    MAX_KEYS = 10_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._generation = 0
        self._nodes_of: dict[str, tuple[int, Any]] = {}

    # The generation moves after the nodes do: a lookup that read the old one
    # may have used either list, and what it keeps is stale from then on.
    def add_node(self, node: Any) -> None:
        super().add_node(node)
        self._generation += 1

    def remove_node(self, node: Any) -> None:
        super().remove_node(node)
        self._generation += 1

    def get_node(self, key: str) -> Any:
        generation = self._generation  # read first: a change meanwhile makes the entry stale
        kept = self._nodes_of.get(key)
        if kept is not None and kept[0] == generation:
            return kept[1]
        node = super().get_node(key)
        if len(self._nodes_of) >= self.MAX_KEYS:
            self._nodes_of = {}
        self._nodes_of[key] = (generation, node)
        return node


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
