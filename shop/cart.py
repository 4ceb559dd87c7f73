"""The cart as a plain object, and the stores that keep it between requests.

``Cart`` knows nothing of where it lives. A ``CartStore`` loads and saves
it: in ``request.session`` for the five session modes (so the cart lives
wherever the mode keeps sessions), or as rows per user in ``jwt`` mode,
where the token carries identity only.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any, Protocol

from django.conf import settings

MAX_QUANTITY = 99


class Cart:
    """Product ids and quantities; prices are looked up, never stored."""

    def __init__(self, lines: Mapping[int, int] | None = None) -> None:
        self._lines: dict[int, int] = {}
        for product_id, quantity in (lines or {}).items():
            self.set(product_id, quantity)

    def add(self, product_id: int, quantity: int = 1) -> None:
        self.set(product_id, min(self.quantity(product_id) + quantity, MAX_QUANTITY))

    def set(self, product_id: int, quantity: int) -> None:
        """Set a line's quantity; 0 removes it. Idempotent, so a retried request cannot add twice."""
        if not 0 <= quantity <= MAX_QUANTITY:
            raise ValueError(f"quantity must be between 0 and {MAX_QUANTITY}")
        if quantity == 0:
            self._lines.pop(product_id, None)
        else:
            self._lines[product_id] = quantity

    def remove(self, product_id: int) -> None:
        self._lines.pop(product_id, None)

    def clear(self) -> None:
        self._lines.clear()

    def quantity(self, product_id: int) -> int:
        return self._lines.get(product_id, 0)

    def total(self, prices: Mapping[int, Decimal]) -> Decimal:
        """The sum of the lines at these prices; a line without a price counts for nothing."""
        return sum(
            (
                prices[product_id] * quantity
                for product_id, quantity in self._lines.items()
                if product_id in prices
            ),
            Decimal("0.00"),
        )

    @property
    def count(self) -> int:
        return sum(self._lines.values())

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(sorted(self._lines.items()))

    def __len__(self) -> int:
        return len(self._lines)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cart) and self._lines == other._lines

    def __repr__(self) -> str:
        return f"Cart({self._lines!r})"

    def to_dict(self) -> dict[str, Any]:
        # JSON object keys are strings: the session serializer is JSON.
        return {"lines": {str(product_id): quantity for product_id, quantity in self}}

    @classmethod
    def from_dict(cls, data: Any) -> Cart:
        """Rebuild a cart; anything malformed gives an empty cart rather than an error."""
        cart = cls()
        lines = data.get("lines") if isinstance(data, dict) else None
        if isinstance(lines, dict):
            for key, quantity in lines.items():
                try:
                    cart.set(int(key), int(quantity))
                except (TypeError, ValueError):
                    continue
        return cart


class CartStore(Protocol):
    """Where a cart lives between requests."""

    def load(self) -> Cart: ...

    def save(self, cart: Cart) -> None: ...


class CartTooLargeError(ValueError):
    """The cart would push a signed-cookie session past what a browser keeps."""


class SessionCartStore:
    """The cart as one value in the session: saved whole, so the last save wins."""

    key = "cart"

    def __init__(self, session: Any) -> None:
        self.session = session

    def load(self) -> Cart:
        return Cart.from_dict(self.session.get(self.key))

    def save(self, cart: Cart) -> None:
        previous = self.session.get(self.key)
        self.session[self.key] = cart.to_dict()
        size = signed_cookie_size(self.session)
        if size > settings.SESSION_COOKIE_LIMIT:
            self.session[self.key] = previous
            raise CartTooLargeError(
                f"Your cart would make the session cookie {size:,} bytes, and browsers silently "
                f"drop cookies over {settings.SESSION_COOKIE_LIMIT:,}. In cookie mode the whole "
                "session travels in that cookie: remove something first."
            )


def signed_cookie_size(session: Any) -> int:
    """Bytes of ``name=value`` the session cookie will take, or 0 if the session is not a cookie."""
    if not hasattr(session, "_get_session_key") or not _is_signed_cookie(session):
        return 0
    # The signed-cookies backend's key *is* the cookie value: the whole session, signed.
    return len(settings.SESSION_COOKIE_NAME) + 1 + len(session._get_session_key())


def _is_signed_cookie(session: Any) -> bool:
    from django.contrib.sessions.backends.signed_cookies import SessionStore

    return isinstance(session, SessionStore)


class UserCartStore:
    """The cart as database rows per user (``jwt`` mode).

    ``save`` writes only the lines that changed since ``load``, so two
    requests changing different lines do not overwrite each other.
    """

    def __init__(self, user: Any) -> None:
        self.user = user
        self._loaded = Cart()

    def load(self) -> Cart:
        from shop.models import CartLine

        rows = CartLine.objects.filter(user=self.user).values_list("product_id", "quantity")
        self._loaded = Cart(dict(rows))
        return Cart(dict(self._loaded))

    def save(self, cart: Cart) -> None:
        from shop.models import CartLine

        before, after = dict(self._loaded), dict(cart)
        gone = [product_id for product_id in before if product_id not in after]
        if gone:
            CartLine.objects.filter(user=self.user, product_id__in=gone).delete()
        for product_id, quantity in after.items():
            if before.get(product_id) != quantity:
                CartLine.objects.update_or_create(
                    user=self.user, product_id=product_id, defaults={"quantity": quantity}
                )
        self._loaded = Cart(after)


def active_user_cart(user_id: Any) -> Cart | None:
    """An active user's cart, read with the check in one query; None if the user is inactive or gone.

    The cart read of ``jwt`` mode, its busiest request: the token names the
    user, and their row joined to their cart lines says both that they may
    still log in and what their cart holds. Plain SQL, because building this
    query through the ORM costs ten times what SQLite takes to answer it, sent
    on the driver's cursor (``shop.db.fetch_all``).
    """
    from django.db import connections, router

    from shop.db import fetch_all
    from shop.models import CartLine

    connection = connections[router.db_for_read(CartLine)]
    rows = fetch_all(connection, _active_user_cart_sql(connection.alias), (user_id,))
    if not rows:
        return None
    return Cart({product_id: quantity for product_id, quantity in rows if product_id is not None})


@functools.cache
def _active_user_cart_sql(alias: str) -> str:
    """The query, built once per database (its quoting) from the models' metadata."""
    from django.contrib.auth import get_user_model
    from django.db import connections

    from shop.models import CartLine

    users, lines = get_user_model()._meta, CartLine._meta
    q = connections[alias].ops.quote_name
    user_pk = q(users.pk.column)
    return (
        # Identifiers from the models' own metadata; the one value is a parameter.
        f"SELECT line.{q('product_id')}, line.{q('quantity')}"  # noqa: S608
        f" FROM {q(users.db_table)} AS u"
        f" LEFT JOIN {q(lines.db_table)} AS line ON line.{q('user_id')} = u.{user_pk}"
        f" WHERE u.{user_pk} = %s AND u.{q('is_active')}"
    )


def cart_store_for(request: Any) -> CartStore | None:
    """The store for this request's cart, or None where the mode needs a login first."""
    session = getattr(request, "session", None)
    if session is not None:
        return SessionCartStore(session)
    if request.user.is_authenticated:
        return UserCartStore(request.user)
    return None
