"""The ``redis`` mode's session engine: Django's cache sessions, minus one silence.

Django's cache backend treats any error while loading a session as "no
session" (it guards against memcached's invalid keys, ticket #17810). With
Redis holding the only copy, that turns a Redis outage into every visitor
looking logged out — and a cart write in that state starts a fresh, empty
session. Here an unreachable Redis is an error (the request fails with a
5xx: a 503 that says so, from ``shop.views.server_error``), so when Redis
comes back with its data, nobody has lost anything.
"""

from django.contrib.sessions.backends import cache
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

UNREACHABLE = (ConnectionInterrupted, RedisConnectionError, RedisTimeoutError)


class SessionStore(cache.SessionStore):
    def load(self) -> dict:
        try:
            session_data = self._cache.get(self.cache_key)
        except UNREACHABLE:
            raise
        except Exception:  # an invalid key, as Django's own backend allows for
            session_data = None
        if session_data is not None:
            return session_data
        self._session_key = None
        return {}
