"""The logged-in user's row, read with one plain query: what every authenticated request loads.

Django's ``ModelBackend.get_user`` and simplejwt's ``JWTAuthentication.get_user``
load the user through the ORM, ``User.objects.get(pk=...)``: about 150 µs on
the lab's machine to build and compile a query that SQLite answers in 10. Every
cart write, checkout and page of a logged-in user pays it. Here the query is
written once per database from the model's metadata and sent on the driver's
cursor (``shop.db.fetch_all``); the row still comes from the database on every
request, so a password change or a deactivation counts at once, as before.

Timestamps (``last_login``, ``date_joined``) are left out, because the driver's
raw values are not Django's: the user comes back with them deferred, and the
ORM reads them if something asks (nothing on a request's path does).
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ValidationError
from django.db import connections, models, router
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from shop.db import fetch_all


def user_by_id(user_id: Any) -> Any | None:
    """The user with this primary key, active or not; None if there is none (or the id is malformed)."""
    model = get_user_model()
    try:
        pk = model._meta.pk.to_python(user_id)
    except ValidationError:
        return None
    alias = router.db_for_read(model)
    sql, fields = _user_query(alias)
    rows = fetch_all(connections[alias], sql, (pk,))
    if not rows:
        return None
    values = [field.to_python(value) for field, value in zip(fields, rows[0], strict=True)]
    return model.from_db(alias, [field.attname for field in fields], values)


@functools.cache
def _user_query(alias: str) -> tuple[str, tuple[models.Field, ...]]:
    """The query and the fields it reads, built once per database from the model's metadata."""
    meta = get_user_model()._meta
    fields = tuple(
        field for field in meta.concrete_fields if not isinstance(field, models.DateTimeField)
    )
    q = connections[alias].ops.quote_name
    columns = ", ".join(q(field.column) for field in fields)
    # Identifiers from the model's own metadata; the one value is a parameter.
    sql = f"SELECT {columns} FROM {q(meta.db_table)} WHERE {q(meta.pk.column)} = %s"  # noqa: S608
    return sql, fields


class QuickModelBackend(ModelBackend):
    """Django's ``ModelBackend``, loading a session's user with ``user_by_id``."""

    def get_user(self, user_id: Any) -> Any | None:
        user = user_by_id(user_id)
        return user if user is not None and self.user_can_authenticate(user) else None


def token_user(validated_token: Any) -> Any:
    """simplejwt's ``JWTAuthentication.get_user``, loading the user with ``user_by_id``."""
    try:
        user_id = validated_token[jwt_settings.USER_ID_CLAIM]
    except KeyError:
        raise InvalidToken("Token contained no recognizable user identification") from None
    user = user_by_id(user_id)
    if user is None:
        raise AuthenticationFailed("User not found", code="user_not_found")
    if jwt_settings.CHECK_USER_IS_ACTIVE and not user.is_active:
        raise AuthenticationFailed("User is inactive", code="user_inactive")
    return user
