"""The cart write answered without DRF (shop/api/quick.py): the same answer DRF gives, or DRF's.

A plain PUT is answered by ``quick_cart_write``; anything else must reach
DRF and get exactly the answer it always got. ``If-Match: *`` allows any
version, so it sends the same write through DRF: the two answers compare.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.hashers import make_password

from shop.api import quick, serializers
from shop.models import Product
from tests.shoppers import PASSWORD, Shopper


def first_product() -> int:
    return Product.objects.order_by("pk").values_list("pk", flat=True)[0]


def put(shopper: Shopper, product: int, body: str, **headers: str):
    return shopper.client.put(
        f"/api/cart/items/{product}/",
        data=body,
        content_type=headers.pop("content_type", "application/json"),
        headers={**shopper.headers(), **headers},
    )


@pytest.fixture
def drf_calls(monkeypatch) -> list[object]:
    """Every time DRF's serializer checks a quantity: the write went through DRF."""
    calls: list[object] = []
    check = serializers.QuantitySerializer.is_valid

    def counted(self, *args, **kwargs):
        calls.append(self)
        return check(self, *args, **kwargs)

    monkeypatch.setattr(serializers.QuantitySerializer, "is_valid", counted)
    return calls


def test_a_plain_write_is_answered_as_drf_answers_it(
    mode: str, demo_user, django_user_model, drf_calls
):
    # Two users, each with an empty cart at version 0: the same write, each way.
    django_user_model.objects.create_user(username="bob", password=PASSWORD)
    quick_shopper, drf_shopper = Shopper(mode), Shopper(mode)
    quick_shopper.login()
    drf_shopper.login("bob")
    product = first_product()
    quick_answer = put(quick_shopper, product, '{"quantity": 2}')
    assert drf_calls == []  # answered without DRF
    through_drf = put(drf_shopper, product, '{"quantity": 2}', **{"If-Match": "*"})
    assert len(drf_calls) == 1
    assert quick_answer.status_code == through_drf.status_code == 200
    assert quick_answer.content == through_drf.content
    assert quick_answer["ETag"] == through_drf["ETag"] == '"cart-1"'
    for header in ("Content-Type", "Allow", "Vary", "Cache-Control"):
        assert quick_answer.get(header) == through_drf.get(header), header
    # The same cookies set (a cookie session re-sent; a server session's id kept).
    assert set(quick_answer.cookies) == set(through_drf.cookies)
    assert quick_shopper.cart_lines() == drf_shopper.cart_lines() == {product: 2}


@pytest.mark.django_db
def test_an_anonymous_session_cart_is_written_quickly_too(session_shopper: Shopper, drf_calls):
    product = first_product()
    assert put(session_shopper, product, '{"quantity": 4}').status_code == 200
    assert drf_calls == []
    assert session_shopper.cart_lines() == {product: 4}


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ('{"quantity": true}', 400, "quantity: Must be an integer."),
        ('{"quantity": 2.0}', 400, "quantity: Must be an integer."),
        ('{"quantity": "2"}', 400, "quantity: Must be an integer."),
        ('{"quantity": 100}', 400, "quantity: Ensure this value is less than or equal to 99."),
        ('{"quantity": -1}', 400, "quantity: Ensure this value is greater than or equal to 0."),
        ('{"quantity": NaN}', 400, None),
        ("[1]", 400, None),
        ("not json", 400, None),
        ('{"quantity": 3, "note": "ignored"}', 200, None),  # DRF ignores unknown fields
    ],
)
def test_anything_but_a_plain_body_gets_drfs_answer(
    shopper: Shopper, demo_user, drf_calls, body: str, status: int, detail: str | None
):
    shopper.login()
    answer = put(shopper, first_product(), body)
    assert answer.status_code == status, answer.content
    if detail is not None:
        assert answer.json()["detail"] == detail
    assert shopper.cart_lines() == ({first_product(): 3} if status == 200 else {})


def test_a_body_in_another_encoding_is_read_as_drf_reads_it(shopper: Shopper, demo_user):
    shopper.login()
    utf16 = json.dumps({"quantity": 2}).encode("utf-16")
    answer = shopper.client.put(
        f"/api/cart/items/{first_product()}/",
        data=utf16,
        content_type="application/json",
        headers=shopper.headers(),
    )
    assert answer.status_code == 400  # DRF decodes UTF-8, as the API always did
    assert shopper.cart_lines() == {}


def test_unknown_products_missing_csrf_and_bad_tokens_get_drfs_refusals(
    shopper: Shopper, demo_user
):
    shopper.login()
    unknown = put(shopper, 10**9, '{"quantity": 1}')
    assert (unknown.status_code, unknown.json()["detail"]) == (404, "Unknown product 1000000000.")
    if shopper.jwt:
        forged = put(shopper, first_product(), '{"quantity": 1}', Authorization="Bearer x.y.z")
        assert forged.status_code == 401
    else:
        forged = shopper.client.put(
            f"/api/cart/items/{first_product()}/",
            data='{"quantity": 1}',
            content_type="application/json",  # no X-CSRFToken
        )
        assert forged.status_code == 403
        assert forged.json()["detail"].startswith("CSRF Failed")
    assert shopper.cart_lines() == {}


def test_a_session_from_before_a_password_change_is_flushed_by_a_quick_write(
    session_shopper: Shopper, demo_user, drf_calls
):
    session_shopper.login()
    product = first_product()
    assert session_shopper.set_quantity(product, 2).status_code == 200
    demo_user.password = make_password("a new password")
    demo_user.save()
    assert session_shopper.set_quantity(product, 5).status_code == 200
    assert drf_calls == []  # the quick path, not DRF, flushed it
    # Django flushed the old login first: the write landed in a fresh, anonymous session.
    assert session_shopper.whoami()["authenticated"] is False
    assert session_shopper.cart_lines() == {product: 5}


@pytest.mark.django_db
def test_a_cookie_cart_past_the_ceiling_gets_drfs_400_and_stays(use_mode, monkeypatch):
    shopper = Shopper(use_mode("cookie"))
    products = list(Product.objects.order_by("pk").values_list("pk", flat=True)[:2])
    assert shopper.set_quantity(products[0], 1).status_code == 200
    monkeypatch.setattr("django.conf.settings.SESSION_COOKIE_LIMIT", 10)
    refused = put(shopper, products[1], '{"quantity": 1}')
    assert refused.status_code == 400
    assert "remove something first" in refused.json()["detail"]
    monkeypatch.undo()
    assert shopper.cart_lines() == {products[0]: 1}


def test_the_quick_write_reads_no_product_row(shopper: Shopper, demo_user, monkeypatch):
    shopper.login()
    product = first_product()
    assert product in quick.services.PRICES.get()

    def no_query(*args, **kwargs):
        raise AssertionError("the product was read from the database")

    monkeypatch.setattr(quick.services, "product_exists", no_query)
    monkeypatch.setattr(Product.objects, "get", no_query)
    assert put(shopper, product, '{"quantity": 1}').status_code == 200
