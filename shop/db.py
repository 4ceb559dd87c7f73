"""A read on the database driver's own cursor, for the queries on a request's hot path.

Django's ``connection.cursor()`` wraps the driver's cursor to log queries
under DEBUG and run execute wrappers, and its SQLite cursor rewrites the
``%s`` placeholders with a regular expression on every call: together about
10 µs a query on the lab's machine, more than SQLite takes to answer a read
by primary key. ``fetch_all`` rewrites the placeholders once per query
text and keeps what matters (the health check, the connection, the
broken-transaction check, Django's database exceptions). The price: these
reads are missing from ``connection.queries`` and ``assertNumQueries``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

# DB-API placeholder styles that take Django's "%s" as written, or with "?" instead.
FORMAT_STYLES = ("format", "pyformat")  # psycopg
QMARK_STYLE = "qmark"  # sqlite3


def fetch_all(
    connection: BaseDatabaseWrapper, sql: str, params: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """The rows of one query, written with Django's ``%s`` placeholders, on ``connection``."""
    style = connection.Database.paramstyle
    if style != QMARK_STYLE and style not in FORMAT_STYLES:  # another driver: Django's way
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_no_broken_transaction()
    with connection.wrap_database_errors:
        cursor = connection.connection.cursor()
        try:
            cursor.execute(_in_style(sql, style), params)
            return cursor.fetchall()
        finally:
            cursor.close()


@functools.lru_cache(maxsize=64)
def _in_style(sql: str, style: str) -> str:
    if style != QMARK_STYLE:
        return sql
    return re.sub(r"(?<!%)%s", "?", sql).replace("%%", "%")  # as Django's SQLite cursor does
