"""What each mode promises about security, and bad input that must never be a 500."""

import base64
import json
from datetime import timedelta

import jwt as pyjwt
import pytest
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore as DBSessionStore
from django.contrib.sessions.backends.signed_cookies import SessionStore as CookieSessionStore
from django.test import Client
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken, SlidingToken

from shop import verified
from shop.api import authentication
from shop.cart import Cart, SessionCartStore, UserCartStore
from shop.models import CartLine, LoginFailure, Product
from tests.shoppers import PASSWORD, Shopper

pytestmark = pytest.mark.django_db


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def bad_authorization_headers(user) -> dict[str, str]:
    expired = AccessToken.for_user(user)
    expired.set_exp(lifetime=-timedelta(seconds=1))
    claims = {
        "token_type": "access",
        "user_id": str(user.pk),
        "jti": "x" * 32,
        "exp": 2_000_000_000,
    }
    return {
        "bare Bearer": "Bearer",
        "three parts": "Bearer a b",
        "alg none": f"Bearer {b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}.",
        "HS512": "Bearer " + pyjwt.encode(claims, settings.JWT_SIGNING_KEY, algorithm="HS512"),
        "expired": f"Bearer {expired}",
        "refresh as access": f"Bearer {RefreshToken.for_user(user)}",
        "other scheme": "Token x",
        "signed with SECRET_KEY": "Bearer "
        + pyjwt.encode(claims, settings.SECRET_KEY, algorithm="HS256"),
    }


def test_every_malformed_authorization_header_is_refused_never_a_500(use_mode, demo_user) -> None:
    use_mode("jwt")
    for name, header in bad_authorization_headers(demo_user).items():
        whoami = Client().get("/api/whoami/", headers={"Authorization": header})
        cart = Client().get("/api/cart/", headers={"Authorization": header})
        assert cart.status_code == 401, name
        assert whoami.status_code == 401 or whoami.json()["authenticated"] is False, name


def test_bearer_headers_mean_nothing_to_the_session_modes(session_shopper, demo_user) -> None:
    for name, header in bad_authorization_headers(demo_user).items():
        response = session_shopper.client.get("/api/whoami/", headers={"Authorization": header})
        assert response.status_code == 200, name
        assert response.json()["authenticated"] is False


def test_session_fixation_a_pre_login_session_id_is_not_kept(session_shopper, demo_user) -> None:
    shopper = session_shopper
    shopper.set_quantity(Product.objects.first().pk, 1)  # now there is a session id
    planted = shopper.session_cookie()
    assert planted
    shopper.login()
    assert shopper.session_cookie() != planted
    victim_replay = Shopper(shopper.mode)
    victim_replay.client.cookies["sessionid"] = planted
    assert victim_replay.whoami()["authenticated"] is False


def test_an_access_token_outlives_logout_until_it_expires(use_mode, demo_user) -> None:
    shopper = Shopper(use_mode("jwt"))
    shopper.login()
    access, refresh = shopper.access, shopper.refresh
    shopper.logout()
    replay = Client().get("/api/cart/", headers={"Authorization": f"Bearer {access}"})
    assert replay.status_code == 200  # stateless: nothing on the server to revoke
    blacklisted = Client().post(
        "/api/token/refresh/", {"refresh": refresh}, content_type="application/json"
    )
    assert blacklisted.status_code == 401


def test_an_access_token_is_checked_once_per_process_and_a_changed_one_every_time(
    use_mode, demo_user, monkeypatch
) -> None:
    use_mode("jwt")
    raw = str(AccessToken.for_user(demo_user))
    checked: list[bytes] = []
    check = JWTAuthentication.get_validated_token

    def counting_check(self, raw_token: bytes):
        checked.append(raw_token)
        return check(self, raw_token)

    monkeypatch.setattr(JWTAuthentication, "get_validated_token", counting_check)
    for path in ("/api/cart/", "/api/whoami/", "/api/cart/"):
        assert Client().get(path, headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    assert checked == [raw.encode()]
    tampered = raw[:-3] + ("AAA" if raw[-3:] != "AAA" else "BBB")
    for attempt in (1, 2):  # a token that failed is never remembered: checked every time
        before = len(checked)
        refused = Client().get("/api/cart/", headers={"Authorization": f"Bearer {tampered}"})
        assert refused.status_code == 401
        assert len(checked) > before and set(checked[before:]) == {tampered.encode()}, attempt


@pytest.mark.parametrize("leeway", [0, 30])
def test_a_remembered_token_is_forgotten_when_it_expires(demo_user, monkeypatch, leeway) -> None:
    token = AccessToken.for_user(demo_user)
    monkeypatch.setattr(token.get_token_backend(), "leeway", leeway)
    raw = str(token).encode()
    now = token["exp"] + leeway - 1
    monkeypatch.setattr(verified, "time", type("Clock", (), {"time": lambda: now}))
    authentication.RememberedJWTAuthentication().get_validated_token(raw)
    assert authentication.VERIFIED_TOKENS.get(raw)["user_id"] == token["user_id"]
    now = token["exp"] + leeway  # simplejwt's rule: expired once exp + leeway has passed
    assert authentication.VERIFIED_TOKENS.get(raw) is None
    now = token["exp"] + leeway - 1
    assert authentication.VERIFIED_TOKENS.get(raw) is None  # forgotten, not just hidden


def test_a_token_that_can_be_blacklisted_is_checked_every_time(demo_user, monkeypatch) -> None:
    monkeypatch.setattr(jwt_settings, "AUTH_TOKEN_CLASSES", (SlidingToken,))
    raw = str(SlidingToken.for_user(demo_user)).encode()
    assert authentication.RememberedJWTAuthentication().get_validated_token(raw)
    assert authentication.VERIFIED_TOKENS.get(raw) is None


def test_new_signing_settings_forget_every_remembered_check(demo_user, settings) -> None:
    raw = str(AccessToken.for_user(demo_user)).encode()
    authentication.RememberedJWTAuthentication().get_validated_token(raw)
    assert authentication.VERIFIED_TOKENS.get(raw) is not None
    settings.SECRET_KEY = "another-secret-key-for-this-test-only-0123456789"
    assert authentication.VERIFIED_TOKENS.get(raw) is None


def test_remembered_values_are_bounded() -> None:
    values = verified.VerifiedValues[str](max_entries=2)
    for n in range(3):
        values.add(f"raw{n}", f"value{n}", expires_at=float("inf"))
    assert values.get("raw0") is None and values.get("raw1") is None  # full: started over
    assert values.get("raw2") == "value2"


def test_refresh_rotates_and_blacklists_the_old_refresh_token(use_mode, demo_user) -> None:
    shopper = Shopper(use_mode("jwt"))
    shopper.login()
    first = Client().post(
        "/api/token/refresh/", {"refresh": shopper.refresh}, content_type="application/json"
    )
    assert first.status_code == 200
    assert first.json()["refresh"] != shopper.refresh
    again = Client().post(
        "/api/token/refresh/", {"refresh": shopper.refresh}, content_type="application/json"
    )
    assert again.status_code == 401


def test_failed_logins_past_the_limit_are_refused_even_with_the_right_password(
    shopper, demo_user
) -> None:
    for _ in range(settings.LOGIN_FAILURES_PER_ACCOUNT):
        assert shopper.login(password="wrong").status_code == 401
    response = shopper.login()
    assert response.status_code == 429
    assert "Too many failed logins" in response.json()["detail"]
    assert int(response["Retry-After"]) > 0
    other = Shopper(shopper.mode)
    assert other.login(username="bob").status_code == 401  # another account is not locked


def test_the_limit_is_kept_in_the_database_every_instance_shares(shopper, demo_user) -> None:
    shopper.login(password="wrong")
    assert LoginFailure.objects.filter(username="alice").count() == 1


def test_a_forwarded_address_counts_only_from_a_trusted_proxy(use_mode, settings) -> None:
    use_mode("db")
    settings.LOGIN_FAILURES_PER_CLIENT = 3
    for n in range(3):
        Shopper("db").login(username=f"ghost{n}", password="x")
    shopper = Shopper("db")
    assert shopper.login(username="ghost9", password="x").status_code == 429
    spoofed = Shopper("db")
    response = spoofed.call(
        "post",
        "/api/session/login/",
        {"username": "ghost9", "password": "x"},
        headers={"X-Forwarded-For": "203.0.113.9"},
        REMOTE_ADDR="127.0.0.1",
    )
    assert response.status_code == 401  # a new client address, vouched for by the loopback proxy
    settings.TRUSTED_PROXIES = []
    untrusted = spoofed.call(
        "post",
        "/api/session/login/",
        {"username": "ghost8", "password": "x"},
        headers={"X-Forwarded-For": "203.0.113.10"},
    )
    assert untrusted.status_code == 429  # the header is ignored: the peer is 127.0.0.1 again


def test_login_page_is_throttled_too(mode, demo_user) -> None:
    client = Client()
    client.get("/accounts/login/")
    for _ in range(settings.LOGIN_FAILURES_PER_ACCOUNT):
        client.post("/accounts/login/", {"username": "alice", "password": "no"})
    page = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert page.status_code == 429
    assert "Too many failed logins" in page.content.decode()


@pytest.mark.parametrize(
    "username", ["al\x00ice", "ålice 🍵", "x" * 10_000, "", "a\u202eb", 12, None, ["alice"]]
)
def test_odd_login_fields_get_the_generic_error_not_a_500(shopper, username) -> None:
    response = shopper.login(username=username, password="p\x00w")
    assert response.status_code in (400, 401)
    assert response.json()["detail"] == "Invalid username or password."


def test_odd_login_form_fields_are_not_a_500(mode) -> None:
    client = Client()
    for username in ["al\x00ice", "🍵" * 500]:
        assert (
            client.post("/accounts/login/", {"username": username, "password": "x\x00"}).status_code
            == 200
        )


def test_a_body_over_django_s_limit_is_400_not_500(shopper) -> None:
    huge = json.dumps({"username": "a", "password": "b" * (2 * 1024 * 1024)})
    path = "/api/token/" if shopper.jwt else "/api/session/login/"
    response = shopper.client.post(
        path, data=huge, content_type="application/json", headers=shopper.headers()
    )
    assert response.status_code in (400, 413)


def test_interleaved_cart_saves_lose_one_update_in_a_session_but_not_in_jwt_rows(
    use_mode, django_user_model
) -> None:
    """Two tabs: both load, then both save. A session is one blob: the last save wins."""
    use_mode("db")
    a, b = Product.objects.order_by("pk")[:2]
    session = DBSessionStore()
    session.create()
    tab1, tab2 = DBSessionStore(session.session_key), DBSessionStore(session.session_key)
    cart1, cart2 = SessionCartStore(tab1).load(), SessionCartStore(tab2).load()
    cart1.set(a.pk, 1)
    cart2.set(b.pk, 2)
    SessionCartStore(tab1).save(cart1)
    tab1.save()
    SessionCartStore(tab2).save(cart2)
    tab2.save()
    stored = SessionCartStore(DBSessionStore(session.session_key)).load()
    assert dict(stored) == {b.pk: 2}  # tab 1's line is lost

    use_mode("jwt")
    user = django_user_model.objects.create_user("carol")
    rows1, rows2 = UserCartStore(user), UserCartStore(user)
    cart1, cart2 = rows1.load(), rows2.load()
    cart1.set(a.pk, 1)
    cart2.set(b.pk, 2)
    rows1.save(cart1)
    rows2.save(cart2)
    assert dict(CartLine.objects.filter(user=user).values_list("product_id", "quantity")) == {
        a.pk: 1,
        b.pk: 2,
    }


def test_cookie_mode_refuses_a_cart_past_the_4k_cookie_ceiling(use_mode) -> None:
    from django.core.management import call_command

    use_mode("cookie")
    call_command("seed_catalog", 1600, stdout=open("/dev/null", "w"))  # noqa: SIM115
    shopper = Shopper("cookie")
    products = list(Product.objects.order_by("pk").values_list("pk", flat=True))
    # Start from a cart of 1,300 lines (a real signed cookie), then add one by one.
    nearly_full = CookieSessionStore()
    SessionCartStore(nearly_full).save(Cart(dict.fromkeys(products[:1300], 1)))
    shopper.client.cookies["sessionid"] = nearly_full._get_session_key()
    refused = None
    for product in products[1300:]:
        response = shopper.set_quantity(product, 1)
        if response.status_code != 200:
            refused = response
            break
    assert refused is not None and refused.status_code == 400
    assert "browsers silently drop cookies over 4,096" in refused.json()["detail"]
    cookie = shopper.client.cookies["sessionid"].value
    assert len("sessionid=" + cookie) <= 4096
    lines = len(shopper.cart()["items"])
    # zlib-compressed and signed: ~1,350 one-item lines fit in 4 KB.
    assert 1300 < lines < 1600  # the cart kept every line that fit
    page = shopper.client.post(
        f"/cart/add/{product}/", {"quantity": 1, "csrfmiddlewaretoken": shopper.csrf}, follow=True
    )
    assert "browsers silently drop cookies" in page.content.decode()
