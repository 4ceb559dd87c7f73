"""The ``db`` mode's session engine: Django's database sessions, read with one plain query.

Every request that touches a session reads its row, so the read is the
engine's hot path. The query is the one Django's engine sends (the row by
its key, if not expired); building it through the ORM costs about ten times
what SQLite takes to answer it, so it is written out here and sent on the
driver's cursor (``shop.db.fetch_all``). ``aload`` sends the same query
(Django's own async read would go back to the ORM), so the sync and async
reads cannot drift apart. Saving, creating, deleting and expiring are
Django's, unchanged, in both forms.

``touch_expiry`` (for ``SESSION_IDLE_S``: ``shop.timeouts.refresh_expiry``)
moves a session's expiry alone: one UPDATE of its row's ``expire_date``,
never its data, so a request that only read the session cannot save what
it read over a concurrent change. A row gone meanwhile (a logout) or
expired already is left as it is.
"""

from __future__ import annotations

import functools
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.sessions.backends import db
from django.db import connections, router
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

    def touch_expiry(self) -> bool:
        """Move this loaded session's expiry to now + its age, its data untouched.

        False if no live row holds it any more: nothing is brought back then.
        """
        return touch_row(self)

    def _session_data(self, session_key: str) -> str | None:
        connection = connections[router.db_for_read(self.model)]
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        rows = fetch_all(connection, _session_sql(self.model, connection.alias), (session_key, now))
        return rows[0][0] if rows else None


def touch_row(store: db.SessionStore) -> bool:
    """Move the expiry of ``store``'s session row to now + its age (one UPDATE); False if no live
    row holds it. Also ``shop.sessions.cached_db``'s, whose store is Django's database one too."""
    if store.session_key is None:
        return False
    rows = store.model.objects.using(router.db_for_write(store.model)).filter(
        session_key=store.session_key, expire_date__gt=timezone.now()
    )
    return rows.update(expire_date=store.get_expiry_date()) > 0


@functools.cache
def _session_sql(model: type[Model], alias: str) -> str:
    """The row's query, built once per database (its quoting) from the model's metadata."""
    q = connections[alias].ops.quote_name
    return (
        # Identifiers from the model's own metadata; the values are parameters.
        f"SELECT {q('session_data')} FROM {q(model._meta.db_table)}"  # noqa: S608
        f" WHERE {q('session_key')} = %s AND {q('expire_date')} > %s"
    )
