"""``CART_STORE=rows``: a logged-in user's cart as database rows per line, in the session modes.

The fix for lost updates (``two-tabs``): each write changes only its own
line. What a visitor put in the cart before logging in joins the rows.
"""

from __future__ import annotations

import pytest

from shop.cart import SessionCartStore
from shop.models import CartLine, CartVersion, Order, Product
from tests.shoppers import Shopper

pytestmark = pytest.mark.django_db

# One mode per kind of session store: an instance's memory, the cookie, a database row.
MODES = ("sticky", "cookie", "db")


@pytest.fixture(params=MODES)
def rows_shopper(request: pytest.FixtureRequest, use_mode, settings, demo_user) -> Shopper:
    use_mode(request.param)
    settings.CART_STORE = "rows"
    return Shopper(request.param)


def products(n: int = 2) -> list[int]:
    return list(Product.objects.order_by("pk").values_list("pk", flat=True)[:n])


def session_cart(shopper: Shopper) -> object:
    return shopper.client.session.get(SessionCartStore.key)


def test_a_logged_in_write_is_a_row_and_not_a_session_value(
    rows_shopper: Shopper, demo_user
) -> None:
    first, second = products()
    assert rows_shopper.login().status_code == 200

    assert rows_shopper.set_quantity(first, 2).status_code == 200
    assert rows_shopper.set_quantity(second, 1).status_code == 200

    stored = dict(CartLine.objects.filter(user=demo_user).values_list("product_id", "quantity"))
    assert stored == {first: 2, second: 1}
    assert rows_shopper.cart_lines() == stored
    assert session_cart(rows_shopper) is None
    version = CartVersion.objects.get(user=demo_user).version
    assert rows_shopper.call("get", "/api/cart/").headers["ETag"] == f'"cart-{version}"'


def test_the_visitors_cart_joins_the_rows_at_login(rows_shopper: Shopper, demo_user) -> None:
    first, second = products()
    CartLine.objects.create(user=demo_user, product_id=first, quantity=3)
    rows_shopper.set_quantity(first, 1)
    rows_shopper.set_quantity(second, 2)
    assert session_cart(rows_shopper) is not None  # a visitor's cart lives in the session

    assert rows_shopper.login().status_code == 200

    # The larger quantity of a line in both; the session keeps no second copy.
    assert rows_shopper.cart_lines() == {first: 3, second: 2}
    assert session_cart(rows_shopper) is None


def test_two_logins_of_one_user_share_the_rows(rows_shopper: Shopper, demo_user) -> None:
    (product,) = products(1)
    other = Shopper(rows_shopper.mode)
    rows_shopper.login()
    other.login()

    rows_shopper.set_quantity(product, 2)

    assert other.cart_lines() == {product: 2}


def test_checkout_orders_the_rows_and_empties_them(rows_shopper: Shopper, demo_user) -> None:
    (product,) = products(1)
    rows_shopper.login()
    rows_shopper.set_quantity(product, 2)

    answer = rows_shopper.checkout()

    assert answer.status_code == 201, answer.content
    order = Order.objects.get(pk=answer.json()["order"])
    assert [(line.product_id, line.quantity) for line in order.lines.all()] == [(product, 2)]
    assert rows_shopper.cart_lines() == {}
    assert not CartLine.objects.filter(user=demo_user).exists()


def test_a_visitor_s_line_of_a_product_gone_since_is_dropped_at_login(
    rows_shopper: Shopper, demo_user
) -> None:
    first, second = products()
    rows_shopper.set_quantity(first, 1)
    rows_shopper.set_quantity(second, 2)
    Product.objects.filter(pk=second).delete()  # the catalog reset meanwhile

    assert rows_shopper.login().status_code == 200

    assert rows_shopper.cart_lines() == {first: 1}
    assert rows_shopper.whoami()["authenticated"] is True


def deleted_elsewhere() -> int:
    """A product this process's price list still holds, deleted as another instance would:
    in the database only (no signal here clears the list)."""
    from django.db import connection

    from shop import services

    product = Product.objects.create(name="Gone soon", price="1.00", category="tea")
    services.PRICES.clear()
    assert product.pk in services.PRICES.get()
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Product._meta.db_table} WHERE id = %s", [product.pk])  # noqa: S608
    return product.pk


@pytest.mark.parametrize("body", ['{"quantity": 2}', '{"quantity": 2, "via": "drf"}'])
def test_a_product_deleted_moments_ago_is_a_404_not_a_500_in_a_cart_of_rows(
    use_mode, settings, demo_user, body: str
) -> None:
    # jwt's carts are rows, and so are a session mode's with CART_STORE=rows.
    for mode, cart_store in (("jwt", "session"), ("db", "rows")):
        use_mode(mode)
        settings.CART_STORE = cart_store
        shopper = Shopper(mode)
        shopper.login()
        kept = products(1)[0]
        assert shopper.set_quantity(kept, 1).status_code == 200
        gone = deleted_elsewhere()
        # The plain write (answered without DRF) and one only DRF answers (an extra field).
        answer = shopper.client.put(
            f"/api/cart/items/{gone}/", data=body, content_type="application/json",
            headers=shopper.headers(),
        )  # fmt: skip
        assert answer.status_code == 404, (mode, answer.content)
        assert answer.json()["detail"] == f"Unknown product {gone}."
        assert shopper.cart_lines() == {kept: 1}
        assert CartVersion.objects.get(user=demo_user).version == 1  # the bump was undone
        CartLine.objects.all().delete()
        CartVersion.objects.all().delete()
