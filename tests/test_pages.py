"""The HTML pages a person clicks through, in every mode: catalog to order, with the inspector."""

import re

import pytest
from django.test import Client

from shop.models import Order, Product
from tests.shoppers import PASSWORD

pytestmark = pytest.mark.django_db


def csrf(client: Client) -> str:
    return client.cookies["csrftoken"].value


def browser() -> Client:
    client = Client(enforce_csrf_checks=True)
    client.get("/")
    return client


def log_in(client: Client, next_url: str = "/") -> None:
    response = client.post(
        "/accounts/login/",
        {
            "username": "alice",
            "password": PASSWORD,
            "next": next_url,
            "csrfmiddlewaretoken": csrf(client),
        },
    )
    assert response.status_code == 302, response.content.decode()[:500]
    assert response["Location"] == next_url


@pytest.mark.parametrize(
    "path", ["/", "/?category=tea", "/cart/", "/accounts/login/", "/api/docs/"]
)
def test_public_pages_render(mode: str, path: str) -> None:
    response = Client().get(path)
    assert response.status_code == 200


def test_every_page_ends_with_the_session_inspector(mode: str, demo_user) -> None:
    client = browser()
    log_in(client)
    product = Product.objects.first()
    for path in ("/", f"/products/{product.pk}/", "/cart/", "/checkout/", "/orders/"):
        page = client.get(path).content.decode()
        inspector = page.split('aria-label="Session inspector"', 1)[1]
        assert f"<strong>{mode}</strong>" in inspector
        assert "<strong>app1</strong>" in inspector
        assert "logged in as <strong>alice</strong>" in inspector


def test_inspector_says_where_the_session_lives(mode: str, demo_user) -> None:
    client = browser()
    log_in(client)
    page = client.get("/cart/").content.decode()
    where = re.search(r"your session</dt><dd>(.*?)</dd>", page).group(1)
    expected = {
        "sticky": "local memory of app1",
        "redis": "Redis key",
        "db": "row in django_session",
        "cached_db": "Redis key",
        "cookie": "cookie, ",
        "jwt": "JWT in the cookie",
        "memcached": "memcached node ",
        "replicated": "Valkey key",
    }[mode]
    assert expected in where
    session_key = client.cookies.get("sessionid")
    if session_key and mode != "cookie":
        assert session_key.value not in page  # shown shortened: a full key is a credential


def test_login_page_shows_the_demo_account(mode: str) -> None:
    page = Client().get("/accounts/login/").content.decode()
    assert "<code>demo</code>" in page
    assert "<code>demo-password</code>" in page


def test_shopping_through_the_pages_places_an_order(mode: str, demo_user) -> None:
    client = browser()
    log_in(client)
    product = Product.objects.first()
    response = client.post(
        f"/cart/add/{product.pk}/", {"quantity": 2, "csrfmiddlewaretoken": csrf(client)}
    )
    assert response["Location"] == "/cart/"
    cart_page = client.get("/cart/").content.decode()
    assert product.name in cart_page
    client.post(f"/cart/update/{product.pk}/", {"quantity": 3, "csrfmiddlewaretoken": csrf(client)})
    assert 'value="3"' in client.get("/cart/").content.decode()
    response = client.post("/checkout/", {"csrfmiddlewaretoken": csrf(client)})
    assert response["Location"] == "/orders/"
    order = Order.objects.get(user=demo_user)
    assert order.lines.get().quantity == 3
    orders_page = client.get("/orders/").content.decode()
    assert f"Order {order.pk}" in orders_page
    assert "Your cart is empty" in client.get("/cart/").content.decode()


def test_logout_is_a_post_and_ends_the_login(mode: str, demo_user) -> None:
    client = browser()
    log_in(client)
    assert client.get("/accounts/logout/").status_code == 405
    client.post("/accounts/logout/", {"csrfmiddlewaretoken": csrf(client)})
    assert "anonymous" in client.get("/").content.decode()
    assert client.get("/orders/")["Location"].startswith("/accounts/login/")


def test_checkout_and_orders_need_a_login(mode: str) -> None:
    for path in ("/checkout/", "/orders/"):
        response = Client().get(path)
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={path}"


def test_a_form_post_without_csrf_token_is_refused(mode: str) -> None:
    client = Client(enforce_csrf_checks=True)
    product = Product.objects.first()
    assert client.post(f"/cart/add/{product.pk}/", {"quantity": 1}).status_code == 403


def test_login_redirect_stays_on_this_site(mode: str, demo_user) -> None:
    client = browser()
    response = client.post(
        "/accounts/login/",
        {
            "username": "alice",
            "password": PASSWORD,
            "next": "https://evil.example/",
            "csrfmiddlewaretoken": csrf(client),
        },
    )
    assert response["Location"] == "/"


def test_a_wrong_password_shows_one_generic_message(mode: str, demo_user) -> None:
    client = browser()
    response = client.post(
        "/accounts/login/",
        {"username": "alice", "password": "nope", "csrfmiddlewaretoken": csrf(client)},
    )
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_jwt_pages_refresh_an_expired_access_cookie(use_mode, demo_user, settings) -> None:
    use_mode("jwt")
    client = browser()
    log_in(client)
    old_refresh = client.cookies["refresh_token"].value
    client.cookies["access_token"] = "expired.or.garbage"
    page = client.get("/cart/")
    assert "logged in as <strong>alice</strong>" in page.content.decode()
    assert client.cookies["refresh_token"].value != old_refresh  # rotated
    stale = Client()
    stale.cookies["refresh_token"] = old_refresh  # blacklisted after rotation
    assert "anonymous" in stale.get("/").content.decode()
