"""The cart as a plain object, and the stores that keep it between requests.

``Cart`` knows nothing of where it lives. A ``CartStore`` loads and saves
it: in ``request.session`` for the five session modes (so the cart lives
wherever the mode keeps sessions), or as rows per user in ``jwt`` mode,
where the token carries identity only.

Every cart has a version: 0 until it first changes, then one more for each
save that changes its lines. The API shows it as the cart's ETag and lets a
write name the version it read (If-Match), so a write sent again late (an
instance that hung and resumed, after nginx re-sent the request elsewhere)
is refused instead of overwriting what the client did since.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any, Protocol

from django.conf import settings

MAX_QUANTITY = 99


class Cart:
    """Product ids and quantities, and the version they were read at; prices are looked up, never stored.

    ``version`` is what the store said when it loaded the cart (and, after a
    save, the version saved); changing the lines does not change it.
    """

    def __init__(self, lines: Mapping[int, int] | None = None, version: int = 0) -> None:
        self.version = version
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
        """The same lines, whatever versions they were read at."""
        return isinstance(other, Cart) and self._lines == other._lines

    def __repr__(self) -> str:
        return f"Cart({self._lines!r}, version={self.version})"

    def to_dict(self) -> dict[str, Any]:
        # JSON object keys are strings: the session serializer is JSON.
        return {
            "lines": {str(product_id): quantity for product_id, quantity in self},
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Cart:
        """Rebuild a cart; anything malformed gives an empty cart (a missing version: 0), not an error."""
        version = data.get("version") if isinstance(data, dict) else None
        valid = isinstance(version, int) and not isinstance(version, bool) and version >= 0
        cart = cls(version=version if valid else 0)
        lines = data.get("lines") if isinstance(data, dict) else None
        if isinstance(lines, dict):
            for key, quantity in lines.items():
                try:
                    cart.set(int(key), int(quantity))
                except (TypeError, ValueError):
                    continue
        return cart


class CartStore(Protocol):
    """Where a cart lives between requests, with its version."""

    def load(self) -> Cart: ...

    def save(self, cart: Cart, *, expected: int | None = None) -> None:
        """Store ``cart``'s lines and set ``cart.version`` to the version they are stored at.

        The version goes up by one if the lines changed, and stays if not.
        ``expected``: the version the write was checked against; a store
        that finds another raises ``StaleCartError`` and changes nothing.
        None: write whatever the version is now.
        """


class StaleCartError(Exception):
    """A conditional write found the cart at another version than the client read: nothing changed."""

    def __init__(self, version: int) -> None:
        super().__init__(f"The cart is at version {version}.")
        self.version = version


class UnknownProductError(LookupError):
    """A cart of rows asked to hold a product the catalog no longer has (deleted moments ago)."""

    def __init__(self, product_id: int) -> None:
        super().__init__(f"Unknown product {product_id}.")
        self.product_id = product_id


class CartTooLargeError(ValueError):
    """The cart would push a signed-cookie session past what a browser keeps."""


class SessionCartStore:
    """The cart as one value in the session, version and lines: saved whole, so the last save wins.

    A save that changes nothing leaves the session unchanged, so Django does
    not write it back to its store (or re-sign its cookie) for nothing.

    The request loads its session once, so the version a write is checked
    against is the one it saves over: no other request can change it between.
    """

    key = "cart"

    def __init__(self, session: Any) -> None:
        self.session = session

    def load(self) -> Cart:
        return Cart.from_dict(self.session.get(self.key))

    def save(self, cart: Cart, *, expected: int | None = None) -> None:
        previous = self.session.get(self.key)
        stored = Cart.from_dict(previous)
        if expected is not None and stored.version != expected:
            raise StaleCartError(stored.version)
        if cart == stored and previous == stored.to_dict():
            # Nothing changed: the session is not marked changed, so not saved again.
            cart.version = stored.version
            return
        version = stored.version if cart == stored else stored.version + 1
        self.session[self.key] = {**cart.to_dict(), "version": version}
        size = signed_cookie_size(self.session)
        if size > settings.SESSION_COOKIE_LIMIT:
            self.session[self.key] = previous
            raise CartTooLargeError(
                f"Your cart would make the session cookie {size:,} bytes, and browsers silently "
                f"drop cookies over {settings.SESSION_COOKIE_LIMIT:,}. In cookie mode the whole "
                "session travels in that cookie: remove something first."
            )
        cart.version = version


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
    """The cart as database rows per user, its version in a row of its own (``jwt`` mode).

    ``save`` writes only the lines that changed since ``load``, so two
    requests changing different lines do not overwrite each other. It bumps
    the version in the same transaction; a conditional save bumps it only
    from the version it expects (a compare-and-set), so of two instances
    that both passed the If-Match check only the first writes.

    Plain SQL (``UserCartSQL``), as the cart read: through the ORM, the five
    statements of a write cost about 1.4 ms to build on the lab's machine,
    several times what the database takes to run them.
    """

    def __init__(self, user: Any) -> None:
        self.user = user
        self._loaded = Cart()

    def load(self) -> Cart:
        # One statement reads the lines and the version together: one snapshot.
        # A user deactivated meanwhile reads as an empty cart, at version 0.
        cart = active_user_cart(self.user.pk)
        if cart is None:  # not `or`: an empty cart is falsy, and has a version
            cart = Cart()
        self._loaded = Cart(dict(cart), version=cart.version)
        return cart

    def save(self, cart: Cart, *, expected: int | None = None) -> None:
        from django.db import connections, router, transaction

        from shop.models import CartLine

        before, after = dict(self._loaded), dict(cart)
        if before == after:  # nothing to write, nothing to bump
            cart.version = self._loaded.version
            return
        alias = router.db_for_write(CartLine)
        sql = UserCartSQL.for_database(alias)
        user_id = self.user.pk
        with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
            version = sql.bump(cursor, user_id, expected)
            gone = [product_id for product_id in before if product_id not in after]
            if gone:
                cursor.execute(sql.delete_lines(len(gone)), (user_id, *gone))
            for product_id, quantity in after.items():
                if before.get(product_id) != quantity:
                    cursor.execute(sql.upsert_line, (user_id, product_id, quantity, product_id))
                    if cursor.rowcount == 0:  # the product is gone: the whole write is undone
                        raise UnknownProductError(product_id)
        self._loaded = Cart(after, version=version)
        cart.version = version


class UserCartSQL:
    """The statements of a ``UserCartStore`` write, built once per database from the models' metadata.

    Identifiers come from the models; every value is a parameter. Both of the
    lab's databases (SQLite 3.35 and later, PostgreSQL) take ``ON CONFLICT``
    and ``RETURNING``.
    """

    def __init__(self, alias: str) -> None:
        from django.db import connections

        from shop.models import CartLine, CartVersion, Product

        q = connections[alias].ops.quote_name
        lines, versions = q(CartLine._meta.db_table), q(CartVersion._meta.db_table)
        products, product_pk = q(Product._meta.db_table), q(Product._meta.pk.column)
        user, product, quantity, version = (
            q("user_id"),
            q("product_id"),
            q("quantity"),
            q("version"),
        )
        # A removal's DELETE: ``delete_lines`` adds one placeholder per product.
        self._delete_from = f"DELETE FROM {lines} WHERE {user} = %s AND {product} IN"  # noqa: S608
        self.read_version = f"SELECT {version} FROM {versions} WHERE {user} = %s"  # noqa: S608
        # A cart's first change creates its version row; every other bumps it.
        self.bump_any = (
            f"INSERT INTO {versions} ({user}, {version}) VALUES (%s, 1)"  # noqa: S608
            f" ON CONFLICT ({user}) DO UPDATE SET {version} = {versions}.{version} + 1"
            f" RETURNING {version}"
        )
        self.bump_from = (
            f"UPDATE {versions} SET {version} = {version} + 1"  # noqa: S608
            f" WHERE {user} = %s AND {version} = %s RETURNING {version}"
        )
        self.create_at_1 = (
            f"INSERT INTO {versions} ({user}, {version}) VALUES (%s, 1)"  # noqa: S608
            f" ON CONFLICT ({user}) DO NOTHING RETURNING {version}"
        )
        # Only for a product that exists: the shop checks ids against a price
        # list up to 10 s old, and a row naming a deleted product would fail
        # the commit (a 500). No row written: ``UnknownProductError``, a 404.
        self.upsert_line = (
            f"INSERT INTO {lines} ({user}, {product}, {quantity})"  # noqa: S608
            f" SELECT %s, %s, %s WHERE EXISTS (SELECT 1 FROM {products} WHERE {product_pk} = %s)"
            f" ON CONFLICT ({user}, {product}) DO UPDATE SET {quantity} = excluded.{quantity}"
        )

    @classmethod
    @functools.cache
    def for_database(cls, alias: str) -> UserCartSQL:
        return cls(alias)

    def delete_lines(self, count: int) -> str:
        return f"{self._delete_from} ({', '.join(['%s'] * count)})"

    def bump(self, cursor: Any, user_id: Any, expected: int | None) -> int:
        """One more than the stored version, or ``StaleCartError`` if it is not ``expected``.

        The UPDATE (or INSERT) holds the row until the transaction ends, so of
        two writers expecting the same version only the first gets a row back.
        """
        if expected is None:
            cursor.execute(self.bump_any, (user_id,))
            return int(cursor.fetchone()[0])
        cursor.execute(self.bump_from, (user_id, expected))
        row = cursor.fetchone()
        if row is None and expected == 0:  # a cart never written has no row yet
            cursor.execute(self.create_at_1, (user_id,))
            row = cursor.fetchone()
        if row is None:
            cursor.execute(self.read_version, (user_id,))
            stored = cursor.fetchone()
            raise StaleCartError(int(stored[0]) if stored else 0)
        return int(row[0])


def active_user_cart(user_id: Any) -> Cart | None:
    """An active user's cart and version, read with the check in one query; None if inactive or gone.

    The cart read of ``jwt`` mode, its busiest request: the token names the
    user, and their row joined to their cart lines and cart version says both
    that they may still log in and what their cart holds (every row repeats
    the version). Plain SQL, because building this query through the ORM
    costs ten times what SQLite takes to answer it, sent on the driver's
    cursor (``shop.db.fetch_all``).
    """
    from django.db import connections, router

    from shop.db import fetch_all
    from shop.models import CartLine

    connection = connections[router.db_for_read(CartLine)]
    rows = fetch_all(connection, _active_user_cart_sql(connection.alias), (user_id,))
    if not rows:
        return None
    return Cart(
        {product_id: quantity for product_id, quantity, _ in rows if product_id is not None},
        version=rows[0][2],
    )


@functools.cache
def _active_user_cart_sql(alias: str) -> str:
    """The query, built once per database (its quoting) from the models' metadata."""
    from django.contrib.auth import get_user_model
    from django.db import connections

    from shop.models import CartLine, CartVersion

    users, lines, versions = get_user_model()._meta, CartLine._meta, CartVersion._meta
    q = connections[alias].ops.quote_name
    user_pk = q(users.pk.column)
    return (
        # Identifiers from the models' own metadata; the one value is a parameter.
        f"SELECT line.{q('product_id')}, line.{q('quantity')}, COALESCE(v.{q('version')}, 0)"  # noqa: S608
        f" FROM {q(users.db_table)} AS u"
        f" LEFT JOIN {q(lines.db_table)} AS line ON line.{q('user_id')} = u.{user_pk}"
        f" LEFT JOIN {q(versions.db_table)} AS v ON v.{q(versions.pk.column)} = u.{user_pk}"
        f" WHERE u.{user_pk} = %s AND u.{q('is_active')}"
    )


def keeps_carts_in_rows() -> bool:
    """``CART_STORE=rows``: a logged-in user's cart is rows in every mode, not a session value."""
    return settings.CART_STORE == "rows"


def session_cart(session: Any) -> Cart | None:
    """A session mode's cart read: the session's own, or the rows of the user it names
    (``CART_STORE=rows``; None if that user may no longer log in)."""
    from django.contrib.auth import SESSION_KEY

    user_id = session.get(SESSION_KEY) if keeps_carts_in_rows() else None
    return SessionCartStore(session).load() if user_id is None else active_user_cart(user_id)


def cart_store_for(request: Any) -> CartStore | None:
    """The store for this request's cart, or None where the mode needs a login first.

    A logged-in user's cart is rows in ``jwt`` mode (no session) and with
    ``CART_STORE=rows``; every other cart lives in the session.
    """
    session = getattr(request, "session", None)
    if session is not None and not keeps_carts_in_rows():
        return SessionCartStore(session)
    if request.user.is_authenticated:
        return UserCartStore(request.user)
    return SessionCartStore(session) if session is not None else None


def move_session_cart_to_rows(request: Any, user: Any) -> None:
    """At login with ``CART_STORE=rows``: what the visitor put in the cart joins the user's rows.

    A line already in the rows keeps the larger quantity (set, never added:
    a login sent twice cannot double a line). A line whose product is gone
    (the catalog was reset meanwhile) is dropped: a row must name a product.
    The session's copy goes, so one cart is all the user ever sees.
    """
    from shop.models import Product

    session = getattr(request, "session", None)
    if session is None or not keeps_carts_in_rows() or SessionCartStore.key not in session:
        return
    visitor = Cart.from_dict(session.pop(SessionCartStore.key))
    existing = set(
        Product.objects.filter(pk__in=[p for p, _ in visitor]).values_list("pk", flat=True)
    )
    lines = [(product_id, quantity) for product_id, quantity in visitor if product_id in existing]
    if not lines:
        return
    store = UserCartStore(user)
    cart = store.load()
    for product_id, quantity in lines:
        cart.set(product_id, max(quantity, cart.quantity(product_id)))
    store.save(cart)
