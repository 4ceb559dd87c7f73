"""The OpenAPI schema each mode serves, and the JSON every ``/api/`` answer is, pinned without a server.

tests/cluster/test_schemathesis.py fuzzes a real instance against this same
schema; these tests pin the promises it relies on, quickly and by name.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from drf_spectacular.validation import validate_schema

from sessions_lab.modes import MODE_NAMES, StoreServer, get_mode
from shop.models import Product
from tests.shoppers import Shopper

pytestmark = pytest.mark.django_db

SESSION_ENDPOINTS = {("post", "/api/session/login/"), ("post", "/api/session/logout/")}
TOKEN_ENDPOINTS = {
    ("post", "/api/token/"),
    ("post", "/api/token/refresh/"),
    ("post", "/api/token/logout/"),
}
CATALOG = ("get", "/api/products/")
EVERY_MODE_ENDPOINTS = {
    ("get", "/api/whoami/"),
    ("get", "/api/products/"),
    ("get", "/api/cart/"),
    ("put", "/api/cart/items/{product_id}/"),
    ("delete", "/api/cart/items/{product_id}/"),
    ("post", "/api/checkout/"),
}
LARGEST_ID = 2**63 - 1  # BigAutoField


def served_schema() -> dict[str, Any]:
    response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def operations(schema: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    }


def response_ref(operation: dict[str, Any], status: str) -> str:
    return operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]


# ------------------------------------------------------------ what each mode serves


def test_the_schema_of_every_mode_is_valid_openapi(mode: str) -> None:
    validate_schema(served_schema())


def test_each_mode_documents_exactly_the_endpoints_it_serves(mode: str) -> None:
    documented = set(operations(served_schema()))
    mode_specific = TOKEN_ENDPOINTS if get_mode(mode).is_jwt else SESSION_ENDPOINTS
    assert documented == EVERY_MODE_ENDPOINTS | mode_specific


def test_an_endpoint_missing_from_the_schema_is_one_that_answers_404(mode: str) -> None:
    documented = set(operations(served_schema()))
    shopper = Shopper(mode)
    for method, path in SESSION_ENDPOINTS | TOKEN_ENDPOINTS:
        answer = shopper.call(method, path, {})
        assert (answer.status_code == 404) == ((method, path) not in documented), (path, answer)


# ------------------------------------------------------------ bodies and constraints


def test_credentials_and_refresh_tokens_cannot_be_empty_or_hold_a_nul(mode: str) -> None:
    components = served_schema()["components"]["schemas"]
    fields = [components["Credentials"]["properties"][name] for name in ("username", "password")]
    if get_mode(mode).is_jwt:
        fields.append(components["Refresh"]["properties"]["refresh"])
    for field in fields:
        assert field["minLength"] == 1
        assert field["pattern"] == "^[^\\u0000]*$"
    assert components["Credentials"]["properties"]["username"]["maxLength"] == 150


def test_the_server_refuses_what_the_schema_refuses_and_reads_what_it_allows(
    shopper: Shopper, demo_user
) -> None:
    login = "/api/token/" if shopper.jwt else "/api/session/login/"
    for refused in ("", "al\x00ice"):
        answer = shopper.call("post", login, {"username": refused, "password": "x"})
        assert answer.status_code == 400
    # Whitespace is a username like any other: wrong, not malformed.
    assert shopper.call("post", login, {"username": " ", "password": " "}).status_code == 401
    if shopper.jwt:
        for path in ("/api/token/refresh/", "/api/token/logout/"):
            assert shopper.call("post", path, {"refresh": ""}).status_code == 400
            # A token is opaque: blanks are not trimmed into an empty field, they are no token.
            assert shopper.call("post", path, {"refresh": "   "}).status_code == 401


def test_product_ids_are_positive_64_bit_integers(mode: str) -> None:
    items = served_schema()["paths"]["/api/cart/items/{product_id}/"]
    for operation in items.values():
        (product_id,) = [p for p in operation["parameters"] if p["in"] == "path"]
        assert product_id["schema"] == {"type": "integer", "minimum": 1, "maximum": LARGEST_ID}


def test_delete_documents_its_200_with_the_cart_body(shopper: Shopper, demo_user) -> None:
    shopper.login()
    delete = served_schema()["paths"]["/api/cart/items/{product_id}/"]["delete"]
    assert "204" not in delete["responses"]
    assert response_ref(delete, "200") == "#/components/schemas/Cart"
    product = Product.objects.order_by("pk").first()
    assert product is not None
    assert shopper.remove(product.pk).json() == {"items": [], "total": "0.00"}


def test_login_documents_the_body_it_answers(shopper: Shopper, demo_user) -> None:
    schema = served_schema()
    components = schema["components"]["schemas"]
    login = "/api/token/" if shopper.jwt else "/api/session/login/"
    documented = response_ref(schema["paths"][login]["post"], "200").rsplit("/", 1)[1]
    body = shopper.login().json()
    assert set(body) == set(components[documented]["required"])
    if shopper.jwt:
        refresh = schema["paths"]["/api/token/refresh/"]["post"]
        assert response_ref(refresh, "200") == "#/components/schemas/TokenPair"
    else:
        assert body == {"detail": "Logged in.", "username": "alice"}


# ------------------------------------------------------------ errors and who may call


def expected_statuses(mode: str) -> dict[tuple[str, str], set[str]]:
    """Every status each operation can answer, as docs/architecture.md states the rules."""
    record = get_mode(mode)
    login_needed = {"401"} if record.is_jwt else set()  # the cart is the session's elsewhere
    bad_token = {"401"} if record.is_jwt else set()
    statuses = {
        ("get", "/api/whoami/"): {"200"} | bad_token,
        ("get", "/api/products/"): {"200"},  # reads no credential, never the session
        ("get", "/api/cart/"): {"200"} | login_needed,
        ("put", "/api/cart/items/{product_id}/"): {"200", "400", "403", "404", "412"}
        | login_needed,
        ("delete", "/api/cart/items/{product_id}/"): {"200", "403", "404", "412"} | login_needed,
        ("post", "/api/checkout/"): {"201", "400", "401", "403", "412", "422"},
        ("post", "/api/session/login/"): {"200", "400", "401", "403", "429"},
        ("post", "/api/session/logout/"): {"200", "403"},
        ("post", "/api/token/"): {"200", "400", "401", "429"},
        ("post", "/api/token/refresh/"): {"200", "400", "401"},
        ("post", "/api/token/logout/"): {"200", "400", "401"},
    }
    if record.store_server is StoreServer.REDIS:
        # Redis down: the only copy fails every call; a copy of the row, every change.
        for method, path in (EVERY_MODE_ENDPOINTS | SESSION_ENDPOINTS) - {CATALOG}:
            if not record.backed_by_database or method != "get":
                statuses[method, path] = statuses[method, path] | {"503"}
    return statuses


def test_every_status_each_operation_can_answer_is_documented(mode: str) -> None:
    expected = expected_statuses(mode)
    for key, operation in operations(served_schema()).items():
        assert set(operation["responses"]) == expected[key], key


def test_every_error_is_documented_as_a_detail(mode: str) -> None:
    schema = served_schema()
    assert schema["components"]["schemas"]["Error"]["required"] == ["detail"]
    for key, operation in operations(schema).items():
        for status, answer in operation["responses"].items():
            if int(status) >= 400:
                assert response_ref(operation, status) == "#/components/schemas/Error", key
                assert answer["description"], key
        for status in {"429", "503"} & set(operation["responses"]):
            assert "Retry-After" in operation["responses"][status]["headers"]


def test_anonymous_callers_are_documented_where_the_mode_lets_them_in(mode: str) -> None:
    ops = operations(served_schema())
    anonymous_read, anonymous_write = {}, {"csrfToken": []}
    if get_mode(mode).is_jwt:
        assert anonymous_read in ops["get", "/api/whoami/"]["security"]
        for key in EVERY_MODE_ENDPOINTS - {("get", "/api/whoami/"), CATALOG}:
            assert ops[key]["security"] == [
                {"jwtBearer": []},
                {"jwtCookie": []} if key[0] == "get" else {"jwtCookie": [], "csrfToken": []},
            ], key
        assert all("security" not in ops[key] for key in TOKEN_ENDPOINTS)
    else:
        for key in (EVERY_MODE_ENDPOINTS | SESSION_ENDPOINTS) - {
            ("post", "/api/checkout/"),
            CATALOG,
        }:
            anonymous = anonymous_read if key[0] == "get" else anonymous_write
            assert anonymous in ops[key]["security"], key
        assert ops["post", "/api/checkout/"]["security"] == [{"sessionCookie": [], "csrfToken": []}]
    # The catalog reads no credential at all: nothing to require.
    assert not ops[CATALOG].get("security")


def test_an_anonymous_call_to_each_operation_answers_a_documented_status(mode: str) -> None:
    product = Product.objects.order_by("pk").first()
    assert product is not None
    shopper = Shopper(mode)
    for (method, path), operation in operations(served_schema()).items():
        body = {} if "requestBody" in operation else None
        answer = shopper.call(method, path.format(product_id=product.pk), body)
        assert str(answer.status_code) in operation["responses"], (method, path, answer.content)
        assert answer["Content-Type"] == "application/json"


REDIS_MODES = [name for name in MODE_NAMES if get_mode(name).store_server is StoreServer.REDIS]


@pytest.mark.parametrize("name", REDIS_MODES)
def test_while_redis_is_down_every_answer_is_a_documented_one(settings, name: str) -> None:
    from tests.conftest import apply_mode

    apply_mode(settings, name, "redis://127.0.0.1:9/0")  # nothing listens on port 9
    product = Product.objects.order_by("pk").first()
    assert product is not None
    client = Client(raise_request_exception=False)  # as a server answers
    client.get("/api/whoami/")  # the CSRF cookie: no session yet, so no Redis either
    headers = {"X-CSRFToken": client.cookies["csrftoken"].value}
    client.cookies["sessionid"] = "a" * 32  # a session Redis would have to be asked about
    answered = set()
    for (method, path), operation in operations(served_schema()).items():
        answer = getattr(client, method)(
            path.format(product_id=product.pk),
            **({} if method == "get" else {"data": "{}", "content_type": "application/json"}),
            headers=headers,
        )
        assert str(answer.status_code) in operation["responses"], (method, path, answer.content)
        answered.add(answer.status_code)
    assert 503 in answered


# ------------------------------------------------------------ JSON everywhere under /api/

UNROUTED = [
    "/api/nope/",
    "/api/",
    "/api",
    "/api/cart/items/-3599604832244450/",
    "/api/cart/items/abc/",
    "/api/cart/items/1.5/",
    "/api/session/login/extra/",
]
UNKNOWN_IDS = [0, LARGEST_ID, LARGEST_ID + 1, 10**30]


@pytest.mark.parametrize("method", ["get", "put", "post", "delete", "patch"])
def test_an_unknown_api_path_is_a_json_404_in_every_mode(mode: str, method: str) -> None:
    client = Client(enforce_csrf_checks=True)  # no token: the 404 comes first all the same
    body = {} if method == "get" else {"data": "{}", "content_type": "application/json"}
    for path in UNROUTED:
        answer = getattr(client, method)(path, **body)
        assert answer.status_code == 404, path
        assert answer.json() == {"detail": "Not found."}, path


def test_an_id_no_product_has_is_a_json_404_in_every_mode(shopper: Shopper, demo_user) -> None:
    shopper.login()
    for product_id in UNKNOWN_IDS:
        for answer in (shopper.set_quantity(product_id, 1), shopper.remove(product_id)):
            assert answer.status_code == 404
            assert answer.json() == {"detail": f"Unknown product {product_id}."}


def test_a_path_without_its_final_slash_is_a_404_that_names_the_right_one(mode: str) -> None:
    answer = Client().post("/api/cart", data="{}", content_type="application/json")
    assert answer.status_code == 404
    assert answer.json() == {"detail": "Not found. The API's paths end with a slash: /api/cart/"}


def test_an_unsupported_method_is_a_json_405_that_names_the_allowed_ones(
    shopper: Shopper, demo_user
) -> None:
    shopper.login()
    answer = shopper.call("patch", "/api/cart/", {})
    assert answer.status_code == 405
    assert answer.json() == {"detail": 'Method "PATCH" not allowed.'}
    assert answer["Allow"] == "GET, HEAD, OPTIONS"


def test_a_body_over_django_s_limit_is_a_json_400(shopper: Shopper) -> None:
    path = "/api/token/" if shopper.jwt else "/api/session/login/"
    huge = json.dumps({"username": "a", "password": "b" * (2 * 1024 * 1024)})
    answer = shopper.client.post(
        path, data=huge, content_type="application/json", headers=shopper.headers()
    )
    assert answer.status_code == 400
    assert answer.json() == {"detail": "Bad request."}


def test_a_session_ended_while_a_write_ran_is_a_json_400_that_says_so(
    use_mode, demo_user, monkeypatch
) -> None:
    from django.contrib.sessions.models import Session

    from shop import services

    shopper = Shopper(use_mode("db"))
    shopper.login()
    set_item = services.cart_set_item

    def logged_out_elsewhere_meanwhile(*args: Any, **kwargs: Any) -> Any:
        cart = set_item(*args, **kwargs)
        Session.objects.all().delete()  # a logout on another instance, mid-request
        return cart

    monkeypatch.setattr(services, "cart_set_item", logged_out_elsewhere_meanwhile)
    product = Product.objects.order_by("pk").first()
    assert product is not None
    answer = shopper.set_quantity(product.pk, 1)
    assert answer.status_code == 400
    assert "session was deleted before the request completed" in answer.json()["detail"]


def test_a_server_error_is_json_under_api_and_django_s_page_elsewhere(monkeypatch) -> None:
    from shop import views
    from shop.api import views as api_views

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(api_views, "quick_cart", broken)
    monkeypatch.setattr(views, "render", broken)
    client = Client(raise_request_exception=False)
    api = client.get("/api/cart/")
    assert (api.status_code, api.json()) == (500, {"detail": "A server error occurred."})
    page = client.get("/")
    assert page.status_code == 500
    assert page["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("path", ["/nope/", "/products/999999/", "/apis/", "/cart/add/x/"])
def test_the_pages_keep_django_s_html_404(mode: str, path: str) -> None:
    answer = Client().get(path)
    assert answer.status_code == 404
    assert answer["Content-Type"].startswith("text/html")
