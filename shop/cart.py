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


class CartTooLargeError(ValueError):
    """The cart would push a signed-cookie session past what a browser keeps."""


class SessionCartStore:
    """The cart as one value in the session, version and lines: saved whole, so the last save wins.

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
    """

    def __init__(self, user: Any) -> None:
        self.user = user
        self._loaded = Cart()

    def load(self) -> Cart:
        from shop.models import CartLine

        # The version first: lines read after it are at least as new, and a
        # change made after it fails a conditional save's compare-and-set.
        version = self._version()
        rows = CartLine.objects.filter(user=self.user).values_list("product_id", "quantity")
        self._loaded = Cart(dict(rows), version=version)
        return Cart(dict(self._loaded), version=version)

    def save(self, cart: Cart, *, expected: int | None = None) -> None:
        from django.db import transaction

        from shop.models import CartLine

        before, after = dict(self._loaded), dict(cart)
        if before == after:  # nothing to write, nothing to bump
            cart.version = self._loaded.version
            return
        with transaction.atomic():
            version = self._bump(expected)
            gone = [product_id for product_id in before if product_id not in after]
            if gone:
                CartLine.objects.filter(user=self.user, product_id__in=gone).delete()
            for product_id, quantity in after.items():
                if before.get(product_id) != quantity:
                    CartLine.objects.update_or_create(
                        user=self.user, product_id=product_id, defaults={"quantity": quantity}
                    )
        self._loaded = Cart(after, version=version)
        cart.version = version

    def _version(self) -> int:
        from shop.models import CartVersion

        rows = CartVersion.objects.filter(user=self.user).values_list("version", flat=True)
        return next(iter(rows), 0)

    def _bump(self, expected: int | None) -> int:
        """One more than the stored version, or ``StaleCartError`` if it is not ``expected``."""
        from django.db.models import F

        from shop.models import CartVersion

        CartVersion.objects.get_or_create(user=self.user)  # at 0: a cart never written
        rows = CartVersion.objects.filter(user=self.user)
        if expected is not None:
            rows = rows.filter(version=expected)
        if not rows.update(version=F("version") + 1):
            raise StaleCartError(self._version())
        # Our UPDATE holds the row until the transaction ends: this reads our own value.
        return self._version()


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
