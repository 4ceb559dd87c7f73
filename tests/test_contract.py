"""The API contract of docs/architecture.md, run against every session mode.

Like Django's ``SessionTestsMixin``: one behaviour suite, the ``mode``
fixture runs each test once per mode. Where a mode differs (``jwt`` has no
anonymous cart), the test says so explicitly.
"""

import json

import pytest
from django.test import Client

from shop.models import Order, Product
from tests.shoppers import PASSWORD, Shopper

pytestmark = pytest.mark.django_db


def first_products(n: int = 3) -> list[int]:
    return list(Product.objects.order_by("pk").values_list("pk", flat=True)[:n])


def test_healthz_answers_without_touching_the_session(shopper: Shopper) -> None:
    response = shopper.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "instance": "app1"}
    assert "sessionid" not in response.cookies


def test_every_response_names_its_instance_and_mode(shopper: Shopper, mode: str) -> None:
    for path in ("/healthz", "/api/products/", "/", "/api/nope/"):
        response = shopper.client.get(path)
        assert response["X-Served-By"] == "app1"
        assert response["X-Session-Mode"] == mode


def test_whoami_sets_the_csrf_cookie(mode: str) -> None:
    shopper = Shopper(mode)
    assert shopper.csrf
    assert shopper.whoami() | {"session": None} == {
        "instance": "app1",
        "mode": mode,
        "authenticated": False,
        "username": "",
        "session": None,
    }


def test_catalog_is_a_plain_list_with_a_category_filter(shopper: Shopper) -> None:
    products = shopper.products()
    assert len(products) >= 20
    assert set(products[0]) == {"id", "name", "price", "category"}
    assert all(isinstance(product["id"], int) for product in products)
    tea = shopper.call("get", "/api/products/?category=tea").json()
    assert tea and {product["category"] for product in tea} == {"tea"}


def test_anonymous_cart_works_in_every_session_mode(shopper: Shopper, mode: str) -> None:
    product = first_products(1)[0]
    response = shopper.set_quantity(product, 2)
    if mode == "jwt":
        assert response.status_code == 401
        assert shopper.call("get", "/api/cart/").status_code == 401
        return
    assert response.status_code == 200, response.content
    assert shopper.cart_lines() == {product: 2}


def test_login_is_seen_by_whoami(shopper: Shopper, demo_user) -> None:
    assert shopper.login().status_code == 200
    me = shopper.whoami()
    assert me["authenticated"] is True
    assert me["username"] == "alice"
    assert me["session"]["bytes"] > 0


def test_cart_survives_across_requests_and_changes_quantity(shopper: Shopper, demo_user) -> None:
    a, b, c = first_products(3)
    shopper.login()
    for product, quantity in ((a, 1), (b, 3), (c, 1)):
        assert shopper.set_quantity(product, quantity).status_code == 200
    assert shopper.set_quantity(b, 5).json()["items"] == [
        {"product": a, "quantity": 1},
        {"product": b, "quantity": 5},
        {"product": c, "quantity": 1},
    ]
    assert shopper.set_quantity(c, 0).status_code == 200
    assert shopper.remove(a).status_code == 200
    assert shopper.cart_lines() == {b: 5}
    price = Product.objects.get(pk=b).price
    assert shopper.cart()["total"] == f"{price * 5:.2f}"


def test_setting_a_quantity_twice_does_not_add_twice(shopper: Shopper, demo_user) -> None:
    product = first_products(1)[0]
    shopper.login()
    shopper.set_quantity(product, 2)
    shopper.set_quantity(product, 2)
    assert shopper.cart_lines() == {product: 2}


def test_checkout_creates_an_order_and_empties_the_cart(shopper: Shopper, demo_user) -> None:
    a, b = first_products(2)
    shopper.login()
    shopper.set_quantity(a, 2)
    shopper.set_quantity(b, 1)
    response = shopper.checkout()
    assert response.status_code == 201, response.content
    order = Order.objects.get(pk=response.json()["order"])
    assert order.user == demo_user
    assert {(line.product_id, line.quantity) for line in order.lines.all()} == {(a, 2), (b, 1)}
    assert response.json()["total"] == f"{order.total:.2f}"
    assert shopper.cart() == {"items": [], "total": "0.00"}


def test_checkout_needs_a_login(shopper: Shopper) -> None:
    response = shopper.checkout()
    assert response.status_code == 401
    assert "detail" in response.json()


def test_checkout_of_an_empty_cart_is_400(shopper: Shopper, demo_user) -> None:
    shopper.login()
    response = shopper.checkout()
    assert response.status_code == 400
    assert response.json()["detail"] == "Your cart is empty."


def test_logout_ends_the_session(shopper: Shopper, demo_user, mode: str) -> None:
    shopper.login()
    shopper.set_quantity(first_products(1)[0], 1)
    assert shopper.logout().status_code == 200
    assert shopper.whoami()["authenticated"] is False
    assert shopper.checkout().status_code == 401


def test_a_replayed_cookie_after_logout_is_anonymous_where_the_server_keeps_sessions(
    session_shopper: Shopper, demo_user
) -> None:
    shopper, mode = session_shopper, session_shopper.mode
    shopper.login()
    stolen = shopper.session_cookie()
    shopper.logout()
    thief = Shopper(mode)
    thief.client.cookies["sessionid"] = stolen
    # A signed cookie carries the session itself: logout cannot take back a copy.
    assert thief.whoami()["authenticated"] is (mode == "cookie")


def test_anonymous_cart_is_kept_at_login(session_shopper: Shopper, demo_user) -> None:
    shopper = session_shopper
    product = first_products(1)[0]
    shopper.set_quantity(product, 3)
    before = shopper.session_cookie()
    shopper.login()
    assert shopper.session_cookie() != before  # rotated at login: no session fixation
    assert shopper.cart_lines() == {product: 3}


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(
            lambda value: value[:-3] + ("AAA" if value[-3:] != "AAA" else "BBB"), id="tampered"
        ),
        pytest.param(lambda value: value[: len(value) // 2], id="truncated"),
        pytest.param(lambda value: "x" * 40, id="random"),
        pytest.param(lambda value: "A" * 5000, id="oversized"),
    ],
)
def test_a_mangled_session_cookie_or_token_is_anonymous_not_a_500(
    shopper: Shopper, demo_user, mode: str, mangle
) -> None:
    shopper.login()
    if mode == "jwt":
        response = shopper.client.get(
            "/api/whoami/", headers={"Authorization": f"Bearer {mangle(shopper.access)}"}
        )
        assert response.status_code == 401
        cookie_client = Shopper(mode)
        cookie_client.client.cookies["access_token"] = mangle(shopper.access)
        assert cookie_client.whoami()["authenticated"] is False
        return
    shopper.client.cookies["sessionid"] = mangle(shopper.session_cookie())
    me = shopper.whoami()
    assert me["authenticated"] is False
    assert shopper.cart() == {"items": [], "total": "0.00"}


def test_a_jwt_cart_read_needs_a_user_who_may_still_log_in(use_mode, demo_user) -> None:
    shopper = Shopper(use_mode("jwt"))
    shopper.login()
    product = first_products(1)[0]
    shopper.set_quantity(product, 2)
    assert shopper.cart_lines() == {product: 2}
    demo_user.is_active = False
    demo_user.save()
    refused = shopper.call("get", "/api/cart/")
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"] == 'Bearer realm="api"'
    assert refused.json()["detail"] == "User is inactive"
    demo_user.delete()
    assert shopper.call("get", "/api/cart/").status_code == 401


def test_a_jwt_cart_read_by_the_pages_token_cookie(use_mode, demo_user) -> None:
    shopper = Shopper(use_mode("jwt"))
    shopper.login()
    product = first_products(1)[0]
    shopper.set_quantity(product, 3)
    page = Shopper("jwt")  # no Authorization header: the HttpOnly cookie the pages use
    page.client.cookies["access_token"] = shopper.access
    assert page.cart_lines() == {product: 3}


def test_the_quick_cart_read_answers_as_drf_would(use_mode, demo_user) -> None:
    shopper = Shopper(use_mode("jwt"))
    shopper.login()
    product = first_products(1)[0]
    shopper.set_quantity(product, 2)
    quick = shopper.call("get", "/api/cart/")  # a bearer token: answered without DRF
    page = Shopper("jwt")
    page.client.cookies["access_token"] = shopper.access
    through_drf = page.call("get", "/api/cart/")  # the pages' cookie: DRF's authentication
    assert quick.content == through_drf.content
    for header in ("Content-Type", "Allow", "Vary"):
        assert quick.get(header) == through_drf.get(header), header


def test_the_api_answers_json_whatever_the_client_accepts(shopper: Shopper, demo_user) -> None:
    shopper.login()
    for path in ("/api/cart/", "/api/products/"):
        response = shopper.call("get", path, headers={"Accept": "text/html"})
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize("quantity", [-1, 100, "2", 1.5, None, True, [1]])
def test_a_bad_quantity_is_400(shopper: Shopper, demo_user, quantity) -> None:
    shopper.login()
    response = shopper.set_quantity(first_products(1)[0], quantity)
    assert response.status_code == 400
    assert "quantity" in response.json()["detail"]


def test_an_unknown_product_is_404(shopper: Shopper, demo_user) -> None:
    shopper.login()
    assert shopper.set_quantity(999_999, 1).status_code == 404
    response = shopper.remove(999_999)
    assert response.status_code == 404
    assert response.json() == {"detail": "Unknown product 999999."}


def test_malformed_json_is_400(shopper: Shopper, demo_user) -> None:
    shopper.login()
    response = shopper.client.put(
        f"/api/cart/items/{first_products(1)[0]}/",
        data="{quantity: 2",
        content_type="application/json",
        headers=shopper.headers(),
    )
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


def test_bad_credentials_are_401_and_missing_fields_400(shopper: Shopper, demo_user) -> None:
    assert shopper.login(password="wrong").status_code == 401
    assert shopper.login(username="nobody").status_code == 401
    path = "/api/token/" if shopper.jwt else "/api/session/login/"
    assert shopper.call("post", path, {"username": "alice"}).status_code == 400


def test_a_cookie_carried_write_without_csrf_token_is_403(mode: str, demo_user) -> None:
    shopper = Shopper(mode)
    product = first_products(1)[0]
    if mode == "jwt":  # the pages' token cookies are what a forged request would carry
        shopper.client.post(
            "/accounts/login/",
            {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": shopper.csrf},
        )
        assert shopper.client.cookies["access_token"].value
    body = json.dumps({"quantity": 1})
    path = f"/api/cart/items/{product}/"
    forged = shopper.client.put(path, data=body, content_type="application/json")
    assert forged.status_code == 403
    assert "CSRF" in forged.json()["detail"]
    honest = shopper.client.put(
        path, data=body, content_type="application/json", headers={"X-CSRFToken": shopper.csrf}
    )
    assert honest.status_code == 200


def test_session_and_token_endpoints_exist_only_in_their_modes(shopper: Shopper, mode: str) -> None:
    session_status = shopper.call("post", "/api/session/login/", {}).status_code
    token_status = shopper.call("post", "/api/token/", {}).status_code
    if mode == "jwt":
        assert session_status == 404
        assert token_status == 400
    else:
        assert session_status == 400
        assert token_status == 404


def test_cached_db_reads_from_the_database_while_redis_is_down_and_refuses_changes(
    settings, demo_user
) -> None:
    from tests.conftest import apply_mode

    apply_mode(settings, "cached_db", "redis://127.0.0.1:9/0")  # nothing listens on port 9
    shopper = Shopper("cached_db")
    shopper.client.raise_request_exception = False  # as a server answers
    assert shopper.login().status_code == 200  # a new session needs no Redis
    assert shopper.whoami()["authenticated"] is True  # read from the row
    # A change to an existing session would leave Redis's copy behind: refused, nothing changed.
    refused = shopper.set_quantity(first_products(1)[0], 2)
    assert refused.status_code == 503
    assert refused["Retry-After"] == "5"
    assert "your session was not changed" in refused.json()["detail"]
    assert shopper.cart_lines() == {}


def test_redis_mode_fails_loudly_rather_than_forget_everyone_while_redis_is_down(
    settings, demo_user, redis_url
) -> None:
    from shop.sessions.cache import UNREACHABLE
    from tests.conftest import apply_mode

    apply_mode(settings, "redis", redis_url)
    shopper = Shopper("redis")
    shopper.login()
    apply_mode(settings, "redis", "redis://127.0.0.1:9/0")  # Redis is gone
    with pytest.raises(UNREACHABLE):  # the test client re-raises what would be a 500
        shopper.whoami()
    apply_mode(settings, "redis", redis_url)  # ... and back, with its data
    assert shopper.whoami()["authenticated"] is True


def test_an_unreachable_session_store_is_a_503_that_says_so(settings, demo_user) -> None:
    from tests.conftest import apply_mode

    apply_mode(settings, "redis", "redis://127.0.0.1:9/0")  # nothing listens on port 9
    client = Client(raise_request_exception=False)  # as a server answers
    client.cookies["sessionid"] = "a" * 32
    api = client.get("/api/cart/")
    assert api.status_code == 503
    assert api["Retry-After"] == "5"
    assert "session store (Redis) cannot be reached" in api.json()["detail"]
    page = client.get("/cart/")
    assert page.status_code == 503
    assert "try again in a moment" in page.content.decode()


def test_any_other_server_error_is_still_djangos_500(settings, monkeypatch) -> None:
    from shop.api import views as api_views

    def broken(request):
        raise RuntimeError("a bug")

    monkeypatch.setattr(api_views, "quick_cart", broken)
    response = Client(raise_request_exception=False).get("/api/cart/")
    assert response.status_code == 500
