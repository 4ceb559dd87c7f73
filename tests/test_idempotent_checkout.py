"""Checkout with an Idempotency-Key, in every mode: one order however often it is sent.

The story: a checkout's instance dies before the client hears the 201; the
client (or nginx, which may re-send a keyed checkout) sends it again. With
the same key it gets the first order back, and the database holds one.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from shop.models import CheckoutKey, Order, Product
from tests.shoppers import PASSWORD, Shopper

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(shopper: Shopper, demo_user) -> Shopper:
    assert shopper.login().status_code == 200
    return shopper


def product() -> int:
    return Product.objects.order_by("pk").values_list("pk", flat=True).first()


def fill(shopper: Shopper, quantity: int = 2) -> str:
    answer = shopper.call("put", f"/api/cart/items/{product()}/", {"quantity": quantity})
    assert answer.status_code == 200, answer.content
    return answer["ETag"]


def checkout(shopper: Shopper, key: str | None, **headers: str) -> Any:
    if key is not None:
        headers["Idempotency-Key"] = key
    return shopper.call("post", "/api/checkout/", headers=headers)


def test_the_same_key_answers_the_same_order_and_places_it_once(alice: Shopper) -> None:
    fill(alice)
    first = checkout(alice, "k-1")
    assert first.status_code == 201, first.content
    assert "Idempotent-Replayed" not in first
    again = checkout(alice, "k-1")
    assert again.status_code == 201, again.content
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1


def test_without_a_key_a_repeat_is_a_new_request(alice: Shopper) -> None:
    fill(alice)
    assert checkout(alice, None).status_code == 201
    assert checkout(alice, None).status_code == 400  # the cart is empty now: no second order
    fill(alice)
    assert checkout(alice, None).status_code == 201
    assert Order.objects.count() == 2


def test_a_new_key_is_a_new_checkout(alice: Shopper) -> None:
    fill(alice)
    assert checkout(alice, "k-1").status_code == 201
    fill(alice, 3)
    second = checkout(alice, "k-2")
    assert second.status_code == 201
    assert Order.objects.count() == 2


def test_a_key_reused_for_another_cart_version_is_422(alice: Shopper) -> None:
    version = fill(alice)
    assert checkout(alice, "k-1", **{"If-Match": version}).status_code == 201
    other = fill(alice, 3)
    reused = checkout(alice, "k-1", **{"If-Match": other})
    assert reused.status_code == 422, reused.content
    assert "first used for another checkout" in reused.json()["detail"]
    assert Order.objects.count() == 1
    # And the repeat of the first request is still its order, though the cart moved on.
    assert checkout(alice, "k-1", **{"If-Match": version}).status_code == 201
    assert Order.objects.count() == 1


@pytest.mark.parametrize("key", ["", " ", "x" * 256, "naïve", "two words"])
def test_a_malformed_key_is_400_and_places_nothing(alice: Shopper, key: str) -> None:
    fill(alice)
    answer = checkout(alice, key)
    assert answer.status_code == 400, answer.content
    assert "Idempotency-Key" in answer.json()["detail"]
    assert Order.objects.count() == 0


def test_a_replay_finishes_emptying_a_cart_the_first_request_left_full(alice: Shopper) -> None:
    # The first request's order committed, its emptied cart was lost with its
    # instance (the session is saved after the order): the cart still holds
    # exactly what was bought.
    fill(alice)
    first = checkout(alice, "k-1")
    fill(alice)
    assert alice.cart_lines() == {product(): 2}
    again = checkout(alice, "k-1")
    assert again.json() == first.json()
    assert alice.cart_lines() == {}
    assert Order.objects.count() == 1


def test_a_replay_leaves_a_cart_filled_since_with_something_else(alice: Shopper) -> None:
    fill(alice)
    checkout(alice, "k-1")
    fill(alice, 5)  # a new cart, not the one bought
    assert checkout(alice, "k-1").status_code == 201
    assert alice.cart_lines() == {product(): 5}


def test_keys_are_per_user(alice: Shopper, demo_user) -> None:
    fill(alice)
    assert checkout(alice, "shared").status_code == 201
    assert CheckoutKey.objects.filter(key="shared").count() == 1


def test_the_page_checkout_places_one_order_for_one_rendered_form(
    session_shopper: Shopper, client: Client, demo_user
) -> None:
    # Once per session mode (session_shopper sets it); the pages log in with a session.
    assert client.login(username=demo_user.username, password=PASSWORD)
    client.post(f"/cart/add/{product()}/", {"quantity": 1})
    page = client.get("/checkout/")
    key = page.context["idempotency_key"]
    assert f'name="idempotency_key" value="{key}"' in page.content.decode()
    for _ in range(2):  # "Place order", pressed twice
        client.post("/checkout/", {"idempotency_key": key})
    assert Order.objects.count() == 1


def test_the_schema_documents_the_key_and_the_422(mode: str) -> None:
    operation = (
        Client().get("/api/schema/", {"format": "json"}).json()["paths"]["/api/checkout/"]["post"]
    )
    [key] = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
    assert key["in"] == "header" and not key.get("required", False)
    assert key["schema"]["pattern"] == "^[!-~]{1,255}$"
    assert operation["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/Error"
    )
