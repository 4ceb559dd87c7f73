"""The ``db`` mode's session engine: Django's database sessions, read with one plain query.

Every request that touches a session reads its row, so the read is the
engine's hot path. The query is the one Django's engine sends (the row by
its key, if not expired); building it through the ORM costs about ten times
what SQLite takes to answer it, so it is written out here and sent on the
driver's cursor (``shop.db.fetch_all``). ``aload`` sends the same query
(Django's own async read would go back to the ORM), so the sync and async
reads cannot drift apart. Saving an existing session is one plain UPDATE
(``update_row``) for the same reason; creating, deleting, expiring and the
async save are Django's, unchanged.

``touch_expiry`` (for ``SESSION_IDLE_S``: ``shop.timeouts.refresh_expiry``)
moves a session's expiry alone: one UPDATE of its row's ``expire_date``,
never its data, so a request that only read the session cannot save what
it read over a concurrent change. A row gone meanwhile (a logout) or
expired already is left as it is.
"""

from __future__ import annotations

import functools
from contextlib import nullcontext
from typing import Any, NamedTuple

from asgiref.sync import sync_to_async
from django.contrib.sessions.backends import db
from django.contrib.sessions.backends.base import UpdateError
from django.db import connections, router, transaction
from django.db.models import Model
from django.utils import timezone

from shop.db import fetch_all


class SessionStore(db.SessionStore):
    def load(self) -> dict[str, Any]:
        session_key = self.session_key  # None unless it is a well-formed key
        data = self._session_data(session_key) if session_key is not None else None
        if data is None:
            self._session_key = None
            return {}
        return self.decode(data)

    async def aload(self) -> dict[str, Any]:
        # The driver's cursor is sync only, as is the ORM under Django's own aload.
        return await sync_to_async(self.load)()

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None or must_create:
            return super().save(must_create)
        return update_row(self)

    def touch_expiry(self) -> bool:
        """Move this loaded session's expiry to now + its age, its data untouched.

        False if no live row holds it any more: nothing is brought back then.
        """
        return touch_row(self)

    def _session_data(self, session_key: str) -> str | None:
        connection = connections[router.db_for_read(self.model)]
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        rows = fetch_all(
            connection, _statements(self.model, connection.alias).select, (session_key, now)
        )
        return rows[0][0] if rows else None


def update_row(store: db.SessionStore) -> None:
    """Save an existing session as Django does (``force_update``), in one plain UPDATE of its row.

    Its data and expiry, by its key; ``UpdateError`` if no row has the key
    any more (a logout elsewhere), as Django's save raises. A database that
    cannot be reached raises its own error (a 500, as every other request
    then gets), not ``UpdateError``: Django's save turns any ``DatabaseError``
    into one, and so answers 400 "the session was deleted" for a session
    that is still there. Building Django's UPDATE through the ORM costs
    about 150 µs here, more than SQLite takes to run it. Outside a
    transaction the statement commits on its own; inside one, it runs in a
    savepoint, as Django's does.
    Also ``shop.sessions.cached_db``'s, whose store is Django's database one too.
    """
    model = store.model
    alias = router.db_for_write(model)
    connection = connections[alias]
    values = (
        store.encode(store._get_session(no_load=False)),
        connection.ops.adapt_datetimefield_value(store.get_expiry_date()),
        store.session_key,
    )
    in_transaction = (
        transaction.atomic(using=alias) if connection.in_atomic_block else nullcontext()
    )
    with in_transaction, connection.cursor() as cursor:
        cursor.execute(_statements(model, alias).update, values)
        updated = cursor.rowcount
    if updated == 0:
        raise UpdateError


def touch_row(store: db.SessionStore) -> bool:
    """Move the expiry of ``store``'s session row to now + its age (one UPDATE); False if no live
    row holds it. Also ``shop.sessions.cached_db``'s, whose store is Django's database one too."""
    if store.session_key is None:
        return False
    rows = store.model.objects.using(router.db_for_write(store.model)).filter(
        session_key=store.session_key, expire_date__gt=timezone.now()
    )
    return rows.update(expire_date=store.get_expiry_date()) > 0


class SessionSQL(NamedTuple):
    """A session row's two statements, built once per model and database (its quoting)."""

    select: str  # its data, if it has not expired: (key, now)
    update: str  # its data and expiry, by its key: (data, expiry, key)


@functools.cache
def _statements(model: type[Model], alias: str) -> SessionSQL:
    q = connections[alias].ops.quote_name
    table, key, data, expiry = (
        q(model._meta.db_table), q("session_key"), q("session_data"), q("expire_date")
    )  # fmt: skip
    # Identifiers from the model's own metadata; the values are parameters.
    return SessionSQL(
        select=f"SELECT {data} FROM {table} WHERE {key} = %s AND {expiry} > %s",  # noqa: S608
        update=f"UPDATE {table} SET {data} = %s, {expiry} = %s WHERE {key} = %s",  # noqa: S608
    )
