"""What "the session store cannot be reached" means to the shop's engines and to its error page.

Two engines keep a session in Redis: ``redis`` holds the only copy there,
``cached_db`` a copy in front of the database row. When Redis cannot be
reached, neither may pretend: a read in ``redis`` mode fails rather than
show a stranger, and a change in ``cached_db`` mode is refused rather than
leave an old copy in Redis to be served when it comes back (a logout that
does not log out). Both end as one of ``UNREACHABLE``, which
``shop.views.server_error`` turns into a 503 with Retry-After.
"""

from __future__ import annotations

from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# What the Redis client raises when the server is down, paused (a read times
# out after SOCKET_TIMEOUT), partitioned away or still loading its data
# (BusyLoadingError is a ConnectionError).
REDIS_DOWN: tuple[type[Exception], ...] = (
    ConnectionInterrupted,
    RedisConnectionError,
    RedisTimeoutError,
)


class SessionChangeRefused(Exception):
    """A change to a session was refused, before anything changed, because Redis could not be reached.

    Raised by ``shop.sessions.cached_db`` for a save, a logout (``flush``),
    a key rotation (``cycle_key``, at login and password change) or a
    ``delete``: each must first take the session's copy out of Redis, and
    could not. The session is exactly as it was, still valid: the client is
    told so and may try again.
    """


UNREACHABLE: tuple[type[Exception], ...] = (*REDIS_DOWN, SessionChangeRefused)
