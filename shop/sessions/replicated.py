"""The ``replicated`` mode's session engine: read your own replica, write the primary Sentinel names.

One Valkey primary holds every session and copies each change to replicas,
one per app instance. An instance reads sessions from its own replica: a
read costs no trip to a shared server, and reads go on while there is no
primary at all. If its replica cannot be reached, it reads the primary
instead: the instance's users are still served. Writes (``create``,
``save``, ``delete``, and ``exists``, which ``create`` asks first) go to
the primary the Sentinels name now, through redis-py's own Sentinel client:
when the primary dies, writes fail (a 503, from ``shop.views.server_error``)
until two Sentinels agree and promote a replica, and then go to it.

Replication is asynchronous: a save is acknowledged by the primary alone,
so a replica may answer with the session as it was a moment ago, and a
failover loses whatever the promoted replica had not received yet. With
``SESSION_REPLICATION=sync`` each save and delete is followed, on the same
connection, by ``WAIT 1 <WAIT_MS>``: if no replica confirms the change in
time, ``ReplicaNotAcknowledged`` (a 503 too). The change stays on the
primary (Redis cannot take it back); the client is only not told it is safe.

The session is stored as the session serializer writes it (JSON, or a
Fernet token with ``SESSION_ENCRYPTION_KEYS``: ``shop.sessions.encryption``),
under its own key, with the session's age as its TTL: expired sessions
vanish on their own, so ``clear_expired`` has nothing to do. As Django's
cache engine does, a save that finds its key gone (a logout in another
request) raises ``UpdateError`` rather than bring the session back, and
``create`` claims a fresh key only if it is free (SET NX). Any other error
from the primary or the Sentinels, including a Sentinel quorum that cannot
be reached (``MasterNotFoundError``), propagates: it is one of
``UNREACHABLE``. Every client tries once and gives up after SOCKET_TIMEOUT:
a dead server is a prompt error, never a hang. The async methods are
SessionBase's own: each runs its sync twin in a thread.

``touch_expiry`` (for ``SESSION_IDLE_S``: ``shop.timeouts.refresh_expiry``)
moves a session's expiry alone: one EXPIRE on the primary, never a SET of
the data, so a request that only read the session cannot save what it read
over a concurrent change; a key gone (a logout meanwhile) is not brought
back. Errors are those of a save; with ``sync`` it sends no WAIT: an expiry
a failover loses only ends the login at the one the replica had, never
loses data.
"""

from __future__ import annotations

import functools
from typing import Any

import redis
from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel

from shop.sessions.errors import ReplicaNotAcknowledged

# Raised by a replica that is down, paused (after SOCKET_TIMEOUT) or still loading.
REPLICA_DOWN = (RedisConnectionError, RedisTimeoutError)


def _once() -> Retry:
    # redis-py retries a failed command ten times by default: here an error is an answer.
    return Retry(NoBackoff(), 0)


@functools.cache
def _clients(
    sentinels: tuple[tuple[str, int], ...],
    service: str,
    replica_url: str,
    timeout: float,
    wait: float,
) -> tuple[redis.Redis, redis.Redis | None]:
    """The primary's client (through the Sentinels) and the replica's: one pair per process
    and per settings. ``wait``: how long a WAIT may keep the primary's answer back."""
    quick = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    sentinel = Sentinel(
        list(sentinels), socket_timeout=timeout, sentinel_kwargs={**quick, "retry": _once()}
    )
    primary = sentinel.master_for(
        service,
        # A WAIT answers after up to WAIT_MS: its reply must not be read as a dead primary.
        socket_timeout=timeout + wait,
        socket_connect_timeout=timeout,
        retry=_once(),
    )
    # No replica of its own (an instance added later): it reads from the primary. A read
    # on a connection the replica closed (Sentinel kills a reconfigured server's clients
    # in a failover) is tried once more on a new one before the primary is asked, which
    # may have no answer then; a timeout (a paused replica) is not tried again.
    again = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
    replica = redis.Redis.from_url(replica_url, **quick, retry=again) if replica_url else None
    return primary, replica


class SessionStore(SessionBase):
    """Sessions in a replicated Valkey: read from this instance's replica, written to the primary."""

    def __init__(self, session_key: str | None = None) -> None:
        self._config = settings.SESSION_REPLICATION
        self._primary, self._replica = _clients(
            tuple((host, int(port)) for host, port in self._config["SENTINELS"]),
            self._config["SERVICE"],
            self._config["REPLICA_URL"],
            self._config["SOCKET_TIMEOUT"],
            self._config["WAIT_MS"] / 1000 if self._config["SYNC"] else 0,
        )
        super().__init__(session_key)

    @property
    def cache_key_prefix(self) -> str:
        return f"{self._config['KEY_PREFIX']}:replicated:"

    @property
    def cache_key(self) -> str:
        return self.cache_key_prefix + self._get_or_create_session_key()

    # -------------------------------------------------------------- reading

    def load(self) -> dict[str, Any]:
        data = self._read(self.cache_key_prefix + self.session_key) if self.session_key else None
        if data is None:
            self._session_key = None
            return {}
        return data

    def _read(self, name: str) -> dict[str, Any] | None:
        if self._replica is None:
            raw = self._primary.get(name)
        else:
            try:
                raw = self._replica.get(name)
            except REPLICA_DOWN:  # this instance's replica is gone: its users still read
                raw = self._primary.get(name)
        if raw is None:
            return None
        try:
            return self.serializer().loads(raw)
        except ValueError:  # not a session this engine wrote: start afresh, as Django does
            return None

    def exists(self, session_key: str | None) -> bool:
        # The primary: a replica may not have the newest key yet.
        return bool(session_key) and self._primary.exists(self.cache_key_prefix + session_key) > 0

    # ------------------------------------------------------------- changing

    def create(self) -> None:
        # SET NX fails only on a key taken meanwhile (errors are raised): a few tries do.
        for _ in range(100):
            self._session_key = self._get_new_session_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise RuntimeError("Unable to create a new session key.")

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        name = self.cache_key
        # The data first: for a new key, no_load keeps the expiry's read from loading it.
        data = self.serializer().dumps(self._get_session(no_load=must_create))
        age = self.get_expiry_age()
        if age <= 0:  # saved already expired: there is nothing to keep
            self._save_expired(name, must_create)
            return None
        pipe = self._primary.pipeline(transaction=False)
        # NX: only a new key; XX: only a key still there (never resurrect a logged-out one).
        pipe.set(name, data, ex=age, nx=must_create, xx=not must_create)
        stored = self._execute(pipe)
        if not stored:
            raise CreateError if must_create else UpdateError
        return None

    def touch_expiry(self) -> bool:
        """Move this loaded session's expiry to now + its age on the primary, its data untouched.

        False if the primary no longer holds it: nothing is stored then.
        """
        if self.session_key is None:
            return False
        # EXPIRE on a missing key is a no-op; one of 0 or less deletes it, as a save would.
        return bool(self._primary.expire(self.cache_key, self.get_expiry_age()))

    def _save_expired(self, name: str, must_create: bool) -> None:
        # As Django's cache engine with a timeout of 0 or less: nothing stored, an
        # existing key deleted, and the same errors for a key taken or gone.
        if must_create:
            if self._primary.exists(name):
                raise CreateError
            return
        pipe = self._primary.pipeline(transaction=False)
        pipe.delete(name)
        if not self._execute(pipe):
            raise UpdateError

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        pipe = self._primary.pipeline(transaction=False)
        pipe.delete(self.cache_key_prefix + session_key)
        self._execute(pipe)  # a logout too must reach a replica before it is called done

    def _execute(self, pipe: redis.client.Pipeline) -> Any:
        """Send ``pipe``'s one write, and with ``SYNC`` a WAIT on the same connection;
        the write's answer, or ``ReplicaNotAcknowledged``."""
        wait_ms = self._config["WAIT_MS"]
        if self._config["SYNC"]:
            pipe.wait(1, wait_ms)  # counts this connection's writes: hence one pipeline
        answer, *acknowledged = pipe.execute()
        if answer and acknowledged and acknowledged[0] < 1:
            raise ReplicaNotAcknowledged(
                f"The session change reached the primary, but no replica confirmed it "
                f"within {wait_ms} ms: a failover now could lose it."
            )
        return answer

    @classmethod
    def clear_expired(cls) -> None:
        pass  # every session carries its TTL: Valkey expires it

    @classmethod
    async def aclear_expired(cls) -> None:
        pass
