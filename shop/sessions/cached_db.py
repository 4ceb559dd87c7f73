"""The ``cached_db`` mode's session engine: Redis in front of the database, and a logout that holds.

Django's cached_db engine writes the database row, then the Redis copy, and
reads the copy first. Run with django-redis's IGNORE_EXCEPTIONS (what keeps
the mode serving while Redis is down) it also ignores errors on the way
out: a logout deletes the row, fails to delete the Redis copy, answers
"logged out" — and when Redis comes back (SIGCONT, the end of a partition,
a restart that reloads its append-only file) the copy is served again, to
every instance, and the old cookie is logged in with its cart. No instance
consults the database on a Redis hit, so a check made afterwards by the
instance that saw the error cannot close that window.

The rule here: **Redis only ever holds a copy of what the database holds**,
and anything that would break it is refused before it changes anything.

- Reading: Redis first. On a miss, the row, copied into Redis with ``add``
  (only if absent: a read that fetched the row just before a save cannot
  overwrite the newer copy the save wrote). While Redis cannot be reached,
  reads take the row and leave Redis alone — the point of the mode.
- Ending a session (``delete``, hence ``flush`` at logout and ``cycle_key``
  at login and password change): delete the Redis copy with errors raised;
  if that fails, refuse (``SessionChangeRefused``: a 503 that says the
  logout did not happen, the session unchanged); else delete the row, then
  the Redis copy again, since a concurrent read may have copied the row
  back in between.
- Changing a session: its first change (setting a key, ``clear``…) first
  takes the Redis copy out, with the same refusal — so a cart change, or a
  checkout emptying the cart inside the order's transaction, fails before
  the view commits anything. Saving deletes the copy again (a read may have
  refilled it since), writes the row, then the new copy; if that last write
  fails, Redis holds nothing and the next read takes the row.
- New sessions: a key this store just created has never reached a client
  and has nothing in Redis before the final save, so creating one needs no
  Redis: a visitor without a session can log in while Redis is down.

The price, against Django's engine: while Redis is unreachable, existing
sessions are read-only — a cart change, a logout, a login over an existing
session, a password change answer 503 instead of being written to the
database alone, because a copy Redis keeps while paused or partitioned, or
reloads from disk, would be served again the moment it returns, with no
database read to notice the change. Each save costs one Redis DELETE more,
and the first change of a request one more. ``SessionChangeRefused`` is
raised at most once per Redis timeout: after one failure a store refuses
without asking Redis again, so a stalled Redis costs a request one
SOCKET_TIMEOUT, not one per command.

Moving the expiry alone (``touch_expiry``, for ``SESSION_IDLE_S``:
``shop.timeouts.refresh_expiry``) is no change: the row's ``expire_date``
first (one UPDATE), then the copy's TTL (a PEXPIRE), never the data, and
no DELETE: a request that only read the session cannot save what it read
over a concurrent change. The row first, so a copy never outlives its row;
a row gone (a logout meanwhile) leaves the copy alone, and a copy absent
stays absent. While Redis cannot be reached (as the request's read found),
nothing moves: the touch is refused (``SessionChangeRefused``), the
request is still answered, and the session's next use moves its expiry
once Redis is back. Should Redis fail between the two, only the row has
moved: a copy Redis still holds expires first, and reads then take the row.

What remains, as in Django's engine: a read or a save of the same session
whose database access comes before a logout's row delete and whose Redis
write comes after the logout's last DELETE puts the deleted session back
until it expires — a whole logout must fit between one request's two steps.
And a save whose last write fails leaves an old copy only if a concurrent
read refilled it between the save's DELETE and its row write.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.sessions.backends import cached_db
from django.contrib.sessions.backends.db import SessionStore as DatabaseStore
from django.core.exceptions import ImproperlyConfigured

from shop.sessions.cache import SerializedSessions
from shop.sessions.db import touch_row, update_row
from shop.sessions.errors import REDIS_DOWN, SessionChangeRefused

logger = logging.getLogger("shop.sessions")

REFUSED = "Redis cannot be reached: the session's copy there could not be removed, so it is left unchanged"
NOT_TOUCHED = "Redis cannot be reached: the session's expiry is left for its next use"


class SessionStore(cached_db.SessionStore):
    """Django's cached_db sessions (same Redis keys), with every change cleared with Redis first."""

    _modified = False
    _fresh_key: str | None = None  # created by this store: never sent, nothing in Redis yet
    _cleared_key: str | None = None  # its Redis copy removed for the change under way
    _redis_down = False  # seen unreachable by this store: stop asking, refuse changes

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        # The Redis copy as the session serializer writes it: encrypted with keys set.
        self._cache = SerializedSessions(self._cache, self.serializer)
        if getattr(self._cache, "_ignore_exceptions", False):
            # A DELETE that fails silently is exactly the logout that does not log out.
            raise ImproperlyConfigured(
                "shop.sessions.cached_db needs its cache to raise errors: IGNORE_EXCEPTIONS off"
            )
        # The key the client presented: a logout retried after a half-done one
        # must still clear its Redis copy, even when the row is already gone.
        self._presented_key = self.session_key

    # -------------------------------------------------------------- reading

    def load(self) -> dict[str, Any]:
        data = self._cached_copy()
        if data is not None:
            return data
        row = self._get_session_from_db()  # sets the key to None if there is no row
        if row is None:
            return {}
        data = self.decode(row.session_data)
        if not self._redis_down:
            try:
                self._cache.add(self.cache_key, data, self.get_expiry_age(expiry=row.expire_date))
            except REDIS_DOWN:
                self._redis_down = True  # a read needs no copy: carry on from the row
        return data

    def _cached_copy(self) -> dict[str, Any] | None:
        try:
            return self._cache.get(self.cache_key)
        except REDIS_DOWN:
            self._redis_down = True
            return None
        except Exception:  # an invalid key (Django's #17810): read the row instead
            return None

    def exists(self, session_key: str | None) -> bool:
        if session_key and not self._redis_down:
            try:
                if self._cache.has_key(self.cache_key_prefix + session_key):
                    return True
            except REDIS_DOWN:
                self._redis_down = True
        return DatabaseStore.exists(self, session_key)

    # ------------------------------------------------------------- changing

    @property
    def modified(self) -> bool:
        return self._modified

    @modified.setter
    def modified(self, value: bool) -> None:
        # Django marks a change by setting ``modified``; the first one of a
        # loaded session clears its Redis copy, or raises and stays unmarked
        # (the middleware then saves nothing).
        if value and not self._modified:
            self._clear_before_change()
        self._modified = value

    def _clear_before_change(self) -> None:
        key = self.session_key
        if key is not None and key not in (self._fresh_key, self._cleared_key):
            self._evict(key)
            self._cleared_key = key

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            self.create()  # the row, with this session's data
            self._write_copy()
            return None
        if must_create:
            # A new key: the row only. Its copy is written by the save that
            # follows (the middleware's), never before the client has it.
            DatabaseStore.save(self, must_create=True)
            self._fresh_key = self.session_key
            return None
        if self.session_key != self._fresh_key:
            self._evict(self.session_key)  # again: a read may have refilled it
        update_row(self)  # Django's save of the row, as one plain UPDATE
        self._write_copy()
        return None

    def touch_expiry(self) -> bool:
        """Move this loaded session's expiry to now + its age, in its row then in its Redis
        copy, its data untouched. False if no live row holds it any more (nothing moved then);
        ``SessionChangeRefused`` while Redis cannot be reached (the row may have moved)."""
        if self.session_key is None:
            return False
        if self._redis_down:  # seen by this request's read: leave the expiry as it is
            raise SessionChangeRefused(NOT_TOUCHED)
        if not touch_row(self):
            return False
        try:
            self._cache.touch(self.cache_key, self.get_expiry_age())  # no copy: none is made
        except REDIS_DOWN as error:
            # The row moved, the copy (if Redis still has one) expires first: reads take the row.
            self._redis_down = True
            raise SessionChangeRefused(NOT_TOUCHED) from error
        return True

    def _write_copy(self) -> None:
        if self._redis_down:
            return
        try:
            self._cache.set(self.cache_key, self._session, self.get_expiry_age())
        except REDIS_DOWN:
            # Nothing in Redis now (a changed session's copy was deleted
            # first, a new one never had one): reads take the row.
            self._redis_down = True
            logger.warning("session saved to the database only: Redis cannot be reached")
            return
        self._fresh_key = self._cleared_key = None  # Redis holds a copy of it now

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            session_key = self.session_key
        if session_key is None:
            return
        if session_key == self._fresh_key:  # no copy, and no one else knows the key
            DatabaseStore.delete(self, session_key)
            return
        self._evict(session_key)
        DatabaseStore.delete(self, session_key)
        # A read between the two may have copied the row back into Redis. If
        # this one fails the row is gone but a copy may not be: still refused,
        # and a retry clears it (the presented key, see flush()).
        self._evict(session_key)

    def flush(self) -> None:
        key = self.session_key or self._presented_key
        self.clear()  # a change: clears the current key's copy first, or refuses
        self.delete(key)
        self._session_key = None

    def cycle_key(self) -> None:
        data = self._session
        key = self.session_key
        if key is not None and key != self._fresh_key:
            self._evict(key)  # refuse before the new row is written
        self.create()
        self._session_cache = data
        if key:
            self.delete(key)

    def _evict(self, session_key: str) -> None:
        """Delete the Redis copy of ``session_key``, or refuse the change (nothing done yet)."""
        if self._redis_down:
            raise SessionChangeRefused(REFUSED)
        try:
            self._cache.delete(self.cache_key_prefix + session_key)
        except REDIS_DOWN as error:
            self._redis_down = True
            raise SessionChangeRefused(REFUSED) from error

    # ---------------------------------------------------------------- async
    #
    # Each async method runs its sync twin in a thread (the row needs the
    # sync ORM anyway, and django-redis's own async methods do the same), so
    # the two cannot drift apart. The async mutators clear the Redis copy
    # there too, before Django's own code marks the change, rather than
    # block the event loop on the ``modified`` setter.

    async def aload(self) -> dict[str, Any]:
        return await sync_to_async(self.load)()

    async def aexists(self, session_key: str | None) -> bool:
        return await sync_to_async(self.exists)(session_key)

    async def acreate(self) -> None:
        await sync_to_async(self.create)()

    async def asave(self, must_create: bool = False) -> None:
        await sync_to_async(self.save)(must_create)

    async def adelete(self, session_key: str | None = None) -> None:
        await sync_to_async(self.delete)(session_key)

    async def aflush(self) -> None:
        await sync_to_async(self.flush)()

    async def acycle_key(self) -> None:
        await sync_to_async(self.cycle_key)()

    async def aset(self, key: str, value: Any) -> None:
        await self._abefore_change(True)
        await super().aset(key, value)

    async def aupdate(self, dict_: dict[str, Any]) -> None:
        await self._abefore_change(True)
        await super().aupdate(dict_)

    async def apop(self, key: str, *args: Any, **kwargs: Any) -> Any:
        await self._abefore_change(key in await self._aget_session())
        return await super().apop(key, *args, **kwargs)

    async def _abefore_change(self, changes: bool) -> None:
        if changes and not self._modified:
            await self._aget_session()  # as the sync mutators: load, then clear
            await sync_to_async(self._clear_before_change)()
