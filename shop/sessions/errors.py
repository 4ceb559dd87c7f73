"""What "the session store cannot be reached" means to the shop's engines and to its error page.

Three engines keep a session in Redis (or Valkey): ``redis`` holds the only
copy there, ``cached_db`` a copy in front of the database row, and
``replicated`` writes it to a primary that copies it to replicas. When the
store cannot be reached, none may pretend: a read in ``redis`` mode fails
rather than show a stranger, a change in ``cached_db`` mode is refused
rather than leave an old copy in Redis to be served when it comes back (a
logout that does not log out), and a save in ``replicated`` mode with
``--replication sync`` that no replica confirmed is not reported as safe.
All end as one of ``UNREACHABLE``, which ``shop.views.server_error`` turns
into a 503 with Retry-After.
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


class ReplicaNotAcknowledged(Exception):
    """A synchronous save reached the primary, but no replica confirmed it in time.

    Raised by ``shop.sessions.replicated`` with ``SESSION_REPLICATION=sync``
    when ``WAIT 1 <WAIT_MS>`` answers 0: the primary holds the change, but a
    failover now could promote a replica without it. It is not undone (Redis
    cannot); the client is told it may not have been kept, and may retry.
    """


UNREACHABLE: tuple[type[Exception], ...] = (
    *REDIS_DOWN,
    SessionChangeRefused,
    ReplicaNotAcknowledged,
)
