"""Conditional cart writes, in every mode: the cart's version as an ETag, If-Match, and 412.

The story they guard against: an instance hangs with a PUT queued, nginx
re-sends the PUT elsewhere, the client changes the cart again, and the hung
instance resumes and applies its old copy over the newer cart. A client that
sends the ETag it read as If-Match gets 412 for that late copy instead.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from shop.models import CartVersion, Order, Product
from tests.shoppers import PASSWORD, Shopper

pytestmark = pytest.mark.django_db

ITEM_WRITES = ("put", "delete")


def first_products(n: int = 2) -> list[int]:
    return list(Product.objects.order_by("pk").values_list("pk", flat=True)[:n])


def etag_of(shopper: Shopper) -> str:
    response = shopper.call("get", "/api/cart/")
    assert response.status_code == 200, response.content
    return response["ETag"]


def put(shopper: Shopper, product: int, quantity: int, if_match: str | None = None):
    headers = {} if if_match is None else {"If-Match": if_match}
    return shopper.call(
        "put", f"/api/cart/items/{product}/", {"quantity": quantity}, headers=headers
    )


def delete(shopper: Shopper, product: int, if_match: str | None = None):
    headers = {} if if_match is None else {"If-Match": if_match}
    return shopper.call("delete", f"/api/cart/items/{product}/", headers=headers)


def checkout(shopper: Shopper, if_match: str | None = None):
    headers = {} if if_match is None else {"If-Match": if_match}
    return shopper.call("post", "/api/checkout/", headers=headers)


def assert_refused(answer: Any, now: str) -> None:
    """A 412 that says what to do, with the cart's version now."""
    assert answer.status_code == 412, answer.content
    assert answer["Content-Type"] == "application/json"
    assert answer["ETag"] == now
    assert answer.json() == {
        "detail": f"The cart changed since you read it (it is now {now}): "
        "read it again, then retry."
    }


@pytest.fixture
def alice(shopper: Shopper, demo_user) -> Shopper:
    """A logged-in shopper in each mode (checkout needs a login everywhere)."""
    assert shopper.login().status_code == 200
    return shopper


# ------------------------------------------------------------ the version and its ETag


def test_a_fresh_cart_is_cart_0_and_each_change_bumps_it(alice: Shopper) -> None:
    a, b = first_products()
    assert etag_of(alice) == '"cart-0"'
    changed = put(alice, a, 2)
    assert changed.status_code == 200
    assert changed["ETag"] == '"cart-1"'
    assert put(alice, b, 1)["ETag"] == '"cart-2"'
    assert put(alice, a, 0)["ETag"] == '"cart-3"'  # 0 on a present line removes it
    assert delete(alice, b)["ETag"] == '"cart-4"'
    assert etag_of(alice) == '"cart-4"'


def test_a_write_that_changes_nothing_keeps_the_version(alice: Shopper) -> None:
    a, b = first_products()
    put(alice, a, 2)
    for answer in (put(alice, a, 2), put(alice, b, 0), delete(alice, b)):
        assert answer.status_code == 200
        assert answer["ETag"] == '"cart-1"'
    # Conditional or not, a no-op checked against the current version is a 200 that bumps nothing.
    assert put(alice, a, 2, if_match='"cart-1"')["ETag"] == '"cart-1"'
    assert etag_of(alice) == '"cart-1"'


def test_the_etag_is_sent_on_every_cart_answer_with_the_personal_cache_headers(
    alice: Shopper,
) -> None:
    a, _ = first_products()
    for answer in (alice.call("get", "/api/cart/"), put(alice, a, 1), delete(alice, a)):
        assert answer.status_code == 200
        assert answer["ETag"].startswith('"cart-')
        assert answer["Cache-Control"] == "private, no-store"
        assert "Cookie" in answer["Vary"]


# ------------------------------------------------------------ If-Match


def test_a_put_with_the_current_etag_applies_and_bumps(alice: Shopper) -> None:
    a, _ = first_products()
    current = etag_of(alice)
    answer = put(alice, a, 3, if_match=current)
    assert answer.status_code == 200
    assert answer["ETag"] == '"cart-1"'
    assert alice.cart_lines() == {a: 3}


@pytest.mark.parametrize("method", ITEM_WRITES)
def test_an_item_write_with_a_stale_etag_is_412_and_changes_nothing(
    alice: Shopper, method: str
) -> None:
    a, b = first_products()
    stale = etag_of(alice)
    put(alice, a, 2)
    put(alice, b, 1)
    answer = put(alice, a, 5, if_match=stale) if method == "put" else delete(alice, a, stale)
    assert_refused(answer, '"cart-2"')
    assert alice.cart_lines() == {a: 2, b: 1}
    assert etag_of(alice) == '"cart-2"'


def test_a_delete_with_the_current_etag_applies_and_bumps(alice: Shopper) -> None:
    a, b = first_products()
    put(alice, a, 2)
    answer = delete(alice, a, etag_of(alice))
    assert (answer.status_code, answer["ETag"]) == (200, '"cart-2"')
    assert alice.cart_lines() == {}
    # An absent line: nothing to delete, nothing bumped.
    assert delete(alice, b, '"cart-2"')["ETag"] == '"cart-2"'


def test_checkout_with_the_current_etag_places_the_order_and_gives_the_empty_carts(
    alice: Shopper,
) -> None:
    a, _ = first_products()
    put(alice, a, 2)
    answer = checkout(alice, etag_of(alice))
    assert answer.status_code == 201, answer.content
    assert answer["ETag"] == '"cart-2"'
    assert alice.cart() == {"items": [], "total": "0.00"}
    assert etag_of(alice) == '"cart-2"'


def test_checkout_with_a_stale_etag_is_412_and_places_no_order(alice: Shopper) -> None:
    a, b = first_products()
    put(alice, a, 2)
    stale = etag_of(alice)
    put(alice, b, 1)
    assert_refused(checkout(alice, stale), '"cart-2"')
    assert not Order.objects.exists()
    assert alice.cart_lines() == {a: 2, b: 1}
    # Without If-Match, checkout stays unconditional.
    unconditional = checkout(alice)
    assert (unconditional.status_code, unconditional["ETag"]) == (201, '"cart-3"')


@pytest.mark.parametrize(
    "if_match",
    [
        pytest.param("*", id="any"),
        pytest.param(' "cart-9", "cart-1" ', id="a list that names it"),
        pytest.param('W/"cart-0", "cart-1"', id="weak and strong"),
    ],
)
def test_an_if_match_that_names_the_current_version_passes(alice: Shopper, if_match: str) -> None:
    a, b = first_products()
    put(alice, a, 1)
    answer = put(alice, b, 4, if_match=if_match)
    assert (answer.status_code, answer["ETag"]) == (200, '"cart-2"')


@pytest.mark.parametrize(
    "if_match",
    [
        pytest.param('W/"cart-1"', id="weak: a strong comparison never matches it"),
        pytest.param('"cart-01"', id="not the same string"),
        pytest.param("cart-1", id="unquoted"),
        pytest.param("", id="empty"),
        pytest.param('"cart-1', id="unterminated"),
        pytest.param('"cart-' + "1" * 5000 + '"', id="a huge number"),
        pytest.param('"cart-1"x', id="trailing junk"),
    ],
)
def test_an_if_match_that_cannot_match_is_412(alice: Shopper, if_match: str) -> None:
    a, _ = first_products()
    put(alice, a, 1)
    assert_refused(put(alice, a, 7, if_match=if_match), '"cart-1"')
    assert alice.cart_lines() == {a: 1}


def test_without_if_match_a_write_is_unconditional(alice: Shopper) -> None:
    a, b = first_products()
    put(alice, a, 1)
    put(alice, b, 1)  # whatever the client last read, a write without If-Match applies
    answer = put(alice, a, 6)
    assert (answer.status_code, answer["ETag"]) == (200, '"cart-3"')
    assert alice.cart_lines() == {a: 6, b: 1}


def test_a_late_duplicate_of_a_put_is_refused_and_the_newer_cart_kept(alice: Shopper) -> None:
    """nginx re-sent the PUT elsewhere; the client moved on; the hung instance's copy arrives."""
    a, _ = first_products()
    read = etag_of(alice)
    applied = put(alice, a, 2, if_match=read)  # the copy nginx re-sent: applied
    assert applied.status_code == 200
    newer = put(alice, a, 3, if_match=applied["ETag"])
    assert newer.status_code == 200
    late = put(alice, a, 2, if_match=read)  # the hung instance's copy, at last
    assert_refused(late, newer["ETag"])
    assert alice.cart_lines() == {a: 3}


def test_validation_and_an_unknown_product_come_before_the_version(alice: Shopper) -> None:
    a, _ = first_products()
    assert put(alice, a, 100, if_match='"cart-9"').status_code == 400
    assert put(alice, 999_999, 1, if_match='"cart-9"').status_code == 404
    assert delete(alice, 999_999, '"cart-9"').status_code == 404


def test_an_anonymous_session_cart_is_versioned_too(session_shopper: Shopper) -> None:
    a, _ = first_products()
    shopper = session_shopper
    assert etag_of(shopper) == '"cart-0"'
    assert put(shopper, a, 2, if_match='"cart-0"')["ETag"] == '"cart-1"'
    assert_refused(put(shopper, a, 5, if_match='"cart-0"'), '"cart-1"')


def test_the_pages_keep_the_version_consistent(mode: str, demo_user) -> None:
    """The HTML forms send no If-Match, but their changes move the version all the same."""
    a, b = first_products()
    browser = Client(enforce_csrf_checks=True)
    browser.get("/accounts/login/")
    token = browser.cookies["csrftoken"].value
    browser.post(
        "/accounts/login/",
        {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": token},
    )
    token = browser.cookies["csrftoken"].value
    for path, data in (
        (f"/cart/add/{a}/", {"quantity": 2}),
        (f"/cart/update/{a}/", {"quantity": 2}),  # the same quantity: no change
        (f"/cart/add/{b}/", {"quantity": 1}),
        (f"/cart/remove/{b}/", {}),
    ):
        answer = browser.post(path, {**data, "csrfmiddlewaretoken": token})
        assert answer.status_code == 302, (path, answer.content[:300])
    cart = browser.get("/api/cart/")
    assert cart.status_code == 200
    assert cart["ETag"] == '"cart-3"'
    assert [item["product"] for item in cart.json()["items"]] == [a]


# ------------------------------------------------------------ jwt: the version in the database


def test_in_jwt_mode_the_version_lives_in_the_database(use_mode, demo_user) -> None:
    a, _ = first_products()
    shopper = Shopper(use_mode("jwt"))
    shopper.login()
    put(shopper, a, 2)
    put(shopper, a, 4)
    assert CartVersion.objects.get(user=demo_user).version == 2
    elsewhere = Shopper("jwt")  # another client, another token: the same cart and version
    elsewhere.login()
    assert etag_of(elsewhere) == '"cart-2"'
    assert_refused(put(shopper, a, 1, if_match='"cart-1"'), '"cart-2"')
    page = Shopper("jwt")  # the pages' token cookie: read through DRF, the same ETag
    page.client.cookies["access_token"] = shopper.access
    assert page.call("get", "/api/cart/")["ETag"] == '"cart-2"'


def test_in_jwt_mode_the_cart_read_stays_one_query(
    use_mode, demo_user, monkeypatch, django_assert_num_queries
) -> None:
    """Lines, version and the user's right to log in: one plain query, not through the ORM."""
    import shop.db

    a, _ = first_products()
    shopper = Shopper(use_mode("jwt"))
    shopper.login()
    put(shopper, a, 2)
    plain = []
    fetch_all = shop.db.fetch_all
    monkeypatch.setattr(
        shop.db, "fetch_all", lambda *args: plain.append(args[1]) or fetch_all(*args)
    )
    with django_assert_num_queries(0):
        answer = shopper.call("get", "/api/cart/")
    assert (answer.status_code, answer["ETag"]) == (200, '"cart-1"')
    assert len(plain) == 1
    assert answer.json()["items"] == [{"product": a, "quantity": 2}]


# ------------------------------------------------------------ the OpenAPI schema

CONDITIONAL_WRITES = {
    ("put", "/api/cart/items/{product_id}/"): "200",
    ("delete", "/api/cart/items/{product_id}/"): "200",
    ("post", "/api/checkout/"): "201",
}


def test_the_schema_documents_if_match_412_and_the_etag(mode: str) -> None:
    paths = Client().get("/api/schema/", {"format": "json"}).json()["paths"]
    for (method, path), success in CONDITIONAL_WRITES.items():
        operation = paths[path][method]
        (if_match,) = [p for p in operation["parameters"] if p["name"] == "If-Match"]
        assert (if_match["in"], if_match.get("required", False)) == ("header", False)
        assert if_match["schema"] == {"type": "string"}  # any value: one that cannot match is a 412
        refused = operation["responses"]["412"]
        assert refused["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
        for status in (success, "412"):
            assert operation["responses"][status]["headers"]["ETag"]["required"] is True
    read = paths["/api/cart/"]["get"]
    assert "ETag" in read["responses"]["200"]["headers"]
    assert not [p for p in read.get("parameters", []) if p["name"] == "If-Match"]
