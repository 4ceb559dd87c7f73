"""A read on the database driver's own cursor, for the queries on a request's hot path.

Django's ``connection.cursor()`` wraps the driver's cursor to log queries
under DEBUG and run execute wrappers, and its SQLite cursor rewrites the
``%s`` placeholders with a regular expression on every call: together about
10 µs a query on the lab's machine, more than SQLite takes to answer a read
by primary key. For SQLite and PostgreSQL, the two databases of the lab,
``fetch_all`` rewrites the placeholders once per query text and keeps the
health check, the connection, the thread and broken-transaction checks and
Django's database exceptions. It skips the query log (these reads are
missing from ``connection.queries`` and ``assertNumQueries``), execute
wrappers, and the time zone that Django's PostgreSQL cursor gives to
timestamps: use it for reads that return none. Other databases get
Django's cursor.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

# The driver's placeholder style for Django's "%s", per database vendor.
PLACEHOLDER_STYLES = {"sqlite": "qmark", "postgresql": "format"}


def fetch_all(
    connection: BaseDatabaseWrapper, sql: str, params: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """The rows of one query, written with Django's ``%s`` placeholders, on ``connection``."""
    style = PLACEHOLDER_STYLES.get(connection.vendor)
    if style is None:  # another database: Django's way
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
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
    if style != "qmark":
        return sql
    return re.sub(r"(?<!%)%s", "?", sql).replace("%%", "%")  # as Django's SQLite cursor does
