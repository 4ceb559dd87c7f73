"""Personal answers stay out of shared caches and off a shared computer's disk, in every mode."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.shoppers import Shopper

pytestmark = pytest.mark.django_db


def cache_control(response) -> set[str]:
    return {part.strip() for part in response.get("Cache-Control", "").split(",") if part.strip()}


def vary(response) -> set[str]:
    return {part.strip().lower() for part in response.get("Vary", "").split(",") if part.strip()}


def assert_personal(response) -> None:
    assert {"private", "no-store"} <= cache_control(response), response.get("Cache-Control")
    assert {"cookie", "authorization"} <= vary(response), response.get("Vary")


def test_a_logged_in_cart_read_and_write_are_private_and_vary_on_every_identity_carrier(
    shopper: Shopper, demo_user
) -> None:
    assert shopper.login().status_code == 200
    product = shopper.products()[0]["id"]
    assert_personal(shopper.set_quantity(product, 2))
    assert_personal(shopper.call("get", "/api/cart/"))
    assert_personal(shopper.call("get", "/api/whoami/"))
    assert_personal(shopper.checkout())


def test_an_anonymous_cart_is_private_too(mode: str) -> None:
    assert_personal(Shopper(mode).call("get", "/api/cart/"))


@pytest.mark.parametrize("path", ["/", "/cart/", "/checkout/", "/orders/", "/accounts/login/"])
def test_the_pages_of_a_logged_in_shopper_are_private(mode: str, demo_user, path: str) -> None:
    client = Client()
    assert client.post(
        "/accounts/login/", {"username": "alice", "password": "correct horse battery staple"}
    ).status_code in (200, 302)
    assert_personal(client.get(path))


def test_a_page_that_never_caches_keeps_its_own_directives_as_well(mode: str) -> None:
    response = Client().get("/accounts/login/")
    assert_personal(response)
    assert "max-age=0" in cache_control(response)


@pytest.mark.parametrize("path", ["/healthz", "/api/products/"])
def test_answers_that_are_the_same_for_everyone_may_be_cached(mode: str, path: str) -> None:
    response = Client().get(path)
    assert response.status_code == 200
    assert "no-store" not in cache_control(response)
    assert "private" not in cache_control(response)
