"""Sessions encrypted at rest (SESSION_ENCRYPTION_KEYS): no store holds the user id or the cart
in clear, keys rotate, and a session no key opens is a logged-out visitor, never a 500.

The raw bytes are read where each mode's store holds them — the Redis or
Valkey value, the memcached node's value, the local-memory cache's entry,
the ``django_session`` row, the cookie — and searched with every outer layer
a thief could undo (Django's signed value: base64, then zlib) undone too.
Without keys the same search finds the session, so the test can fail.
"""

from __future__ import annotations

import base64
import logging
import re
import subprocess
import sys
import zlib
from typing import Any

import pytest
import redis
from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core import signing
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from pymemcache.client.base import Client as MemcachedClient

from sessions_lab import attack
from sessions_lab.modes import Credential, StoreServer, get_mode
from sessions_lab.paths import PROJECT_ROOT
from shop.models import Product
from shop.sessions import cookie, encryption
from shop.sessions.cache import KeptAsBytes
from shop.sessions.encryption import SessionSerializer, Unreadable
from shop.sessions.errors import SessionChangeRefused
from tests.conftest import SESSION_MODES
from tests.shoppers import Shopper

pytestmark = pytest.mark.django_db

OLD, NEW, OTHER = (Fernet.generate_key().decode() for _ in range(3))
QUANTITY = 3
CACHE_PREFIX = "django.contrib.sessions.cache"  # Django's cache engine's, kept by the shop's


# ------------------------------------------------------------------ the stored bytes


def stored_copies(mode: str, key: str, request: pytest.FixtureRequest) -> list[bytes]:
    """Every copy of session ``key`` (the cookie's value in cookie mode), as its store holds it."""
    record = get_mode(mode)
    if record.credential is Credential.SIGNED_SESSION:
        return [key.encode()]
    copies = []
    location = settings.CACHES.get("sessions", {}).get("LOCATION")
    cache_key = caches["sessions"].make_key(CACHE_PREFIX + key) if location else ""
    if record.store_server is StoreServer.REDIS:
        with redis.Redis.from_url(location) as client:  # the cache's own Redis, read raw
            copies += [client.get(name) for name in client.scan_iter(match=f"*{key}")]
    elif record.store_server is StoreServer.REPLICATED:
        with request.getfixturevalue("replication").primary.client() as client:
            copies += [client.get(name) for name in client.scan_iter(match=f"*{key}")]
    elif record.store_server is StoreServer.MEMCACHED:  # ask every node: one holds it
        for node in location:
            host, port = node.rsplit(":", 1)
            copies.append(MemcachedClient((host, int(port))).get(cache_key))
    elif record.store_server is StoreServer.NONE:  # this process's memory: the entry, pickled
        copies.append(caches["sessions"]._cache.get(cache_key))
    if record.store_server is StoreServer.DATABASE or record.backed_by_database:
        rows = Session.objects.filter(session_key=key).values_list("session_data", flat=True)
        copies += [data.encode() for data in rows]
    return [copy for copy in copies if copy is not None]


def unsigned(raw: bytes) -> bytes:
    """The payload of a signed value (``payload:timestamp:signature``): base64, maybe zlib."""
    payload = raw.split(b":", 1)[0]
    data = base64.urlsafe_b64decode(payload.lstrip(b".") + b"=" * (-len(payload.lstrip(b".")) % 4))
    return zlib.decompress(data) if payload.startswith(b".") else data


def layers(raw: bytes) -> list[bytes]:
    """``raw``, and what its outer layers give when undone, as far as they undo."""
    try:
        return [raw, unsigned(raw)]
    except (ValueError, zlib.error):
        return [raw]


def fernet_token(raw: bytes) -> bytes:
    """The Fernet token ``raw`` holds, itself or in its signed payload (or, in local memory, in
    the cache's pickle of it)."""
    for layer in layers(raw):
        token = re.search(rb"gAAAAA[A-Za-z0-9_=-]+", layer)
        if token:
            return token.group()
    raise AssertionError(f"no Fernet token in {raw[:60]!r}")


@pytest.fixture
def demo_products() -> list[int]:
    return list(Product.objects.order_by("pk").values_list("pk", flat=True)[:2])


def logged_in_with_a_cart(mode: str, products: list[int]) -> Shopper:
    shopper = Shopper(mode)
    assert shopper.login().status_code == 200
    for product in products:
        assert shopper.set_quantity(product, QUANTITY).status_code == 200
    return shopper


def secrets_of(shopper: Shopper, user, products: list[int]) -> list[bytes]:
    """What must not be readable: the user id, the cart's lines, each product id with its line."""
    return [
        b"_auth_user_id",
        f'"{user.pk}"'.encode(),
        b'"lines"',
        *(f'"{product}":{QUANTITY}'.encode() for product in products),
    ]


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
@pytest.mark.parametrize("mode", SESSION_MODES)
def test_no_store_holds_the_user_id_or_the_cart_in_clear_once_encrypted(
    use_mode, settings, request, demo_user, demo_products, mode: str, encrypted: bool
) -> None:
    settings.SESSION_ENCRYPTION_KEYS = [NEW] if encrypted else []
    shopper = logged_in_with_a_cart(use_mode(mode), demo_products)
    copies = stored_copies(mode, shopper.session_cookie(), request)
    assert copies, "the session is stored somewhere"
    found = [
        secret
        for raw in copies
        for layer in layers(raw)
        for secret in secrets_of(shopper, demo_user, demo_products)
        if secret in layer
    ]
    if encrypted:
        assert found == []
        assert all(fernet_token(raw) for raw in copies)
    else:  # signed, or plain JSON: all of it readable
        assert set(found) >= {b"_auth_user_id", b'"lines"'}


# ------------------------------------------------------------------ rotation


@pytest.mark.parametrize("mode", ["db", "redis", "cached_db", "cookie", "memcached"])
def test_a_session_under_an_older_key_is_read_and_rewritten_under_the_newest(
    use_mode, settings, request, demo_user, demo_products, mode: str
) -> None:
    settings.SESSION_ENCRYPTION_KEYS = [OLD]
    shopper = logged_in_with_a_cart(use_mode(mode), demo_products)
    written_under_old = shopper.session_cookie()
    settings.SESSION_ENCRYPTION_KEYS = [NEW, OLD]  # a new key, put first
    assert shopper.whoami()["authenticated"] is True  # read under the old key...
    for raw in stored_copies(mode, shopper.session_cookie(), request):  # ...written under the new
        token = fernet_token(raw)
        assert Fernet(NEW).decrypt(token)
        with pytest.raises(InvalidToken):
            Fernet(OLD).decrypt(token)
    if mode == "cookie":  # a copy of the old cookie is checked in full each time
        assert cookie.VERIFIED_COOKIES.get(written_under_old) is None
    settings.SESSION_ENCRYPTION_KEYS = [NEW]  # the old key retired
    assert shopper.whoami()["authenticated"] is True
    assert shopper.cart_lines() == dict.fromkeys(demo_products, QUANTITY)


def test_a_session_under_the_newest_key_is_not_rewritten(
    use_mode, settings, demo_user, demo_products
) -> None:
    settings.SESSION_ENCRYPTION_KEYS = [NEW, OLD]
    shopper = logged_in_with_a_cart(use_mode("cookie"), demo_products)
    response = shopper.call("get", "/api/whoami/")
    assert "sessionid" not in response.cookies  # no new cookie: nothing to rotate
    assert cookie.VERIFIED_COOKIES.get(shopper.session_cookie()) is not None


def test_a_rotation_the_store_refuses_leaves_the_session_as_read(caplog) -> None:
    class Refusing:  # cached_db while Redis is down: its first change is refused
        @property
        def modified(self) -> bool:
            return False

        @modified.setter
        def modified(self, value: bool) -> None:
            raise SessionChangeRefused("Redis cannot be reached")

    with caplog.at_level(logging.WARNING, logger="shop.sessions"):
        encryption.rewrite_under_newest_key(Refusing())
    assert "not rewritten now" in caplog.text


# ------------------------------------------------------------------ unreadable sessions

UNREADABLE = [
    pytest.param([OLD], [OTHER], Unreadable.UNKNOWN_KEY, id="wrong-key"),
    pytest.param([OLD], [], Unreadable.NO_KEYS, id="missing-key"),
    pytest.param([], [NEW], Unreadable.PLAIN_WITH_KEYS, id="plain-while-keys-set"),
]


def warnings_of(caplog) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "shop.sessions" and record.levelno == logging.WARNING
    ]


@pytest.mark.parametrize(("written", "read", "reason"), UNREADABLE)
@pytest.mark.parametrize("mode", ["db", "redis", "cached_db", "cookie", "memcached"])
def test_a_session_no_key_opens_is_a_logged_out_visitor_and_one_warning(
    use_mode, settings, caplog, demo_user, demo_products, mode, written, read, reason
) -> None:
    settings.SESSION_ENCRYPTION_KEYS = written
    shopper = logged_in_with_a_cart(use_mode(mode), demo_products)
    settings.SESSION_ENCRYPTION_KEYS = read
    for path in ("/api/whoami/", "/api/cart/", "/"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="shop.sessions"):
            response = shopper.call("get", path)
        assert response.status_code == 200, (path, response.content[:300])
        if path == "/api/whoami/":
            assert response.json()["authenticated"] is False
        if path == "/api/cart/":
            assert response.json()["items"] == []
        # One line per request at most: the cookie mode's first answer replaces the cookie.
        warned = [f"session unreadable, treated as logged out: {reason.value}"]
        if path == "/api/whoami/":
            assert warnings_of(caplog) == warned
        else:
            assert warnings_of(caplog) in ([], warned)


# ------------------------------------------------------------------ the serializer and keys


def test_without_keys_the_serializer_is_djangos_json_byte_for_byte(settings) -> None:
    settings.SESSION_ENCRYPTION_KEYS = []
    session = {"_auth_user_id": "4", "cart": {"lines": {"1": 2}, "version": 1}}
    assert SessionSerializer().dumps(session) == signing.JSONSerializer().dumps(session)
    assert SessionSerializer().loads(signing.JSONSerializer().dumps(session)) == session


def test_with_keys_the_serializer_writes_a_fernet_token_under_the_first(settings) -> None:
    settings.SESSION_ENCRYPTION_KEYS = [NEW, OLD]
    token = SessionSerializer().dumps({"cart": {"lines": {"1": 2}}})
    assert token.startswith(encryption.FERNET_PREFIX)
    assert Fernet(NEW).decrypt(token) == b'{"cart":{"lines":{"1":2}}}'
    assert SessionSerializer().loads(token) == {"cart": {"lines": {"1": 2}}}


def test_the_keys_are_made_into_fernets_once_per_process(settings) -> None:
    settings.SESSION_ENCRYPTION_KEYS = [NEW, OLD]
    first = encryption.current_keyring()
    assert encryption.current_keyring() is first
    settings.SESSION_ENCRYPTION_KEYS = [NEW]
    assert encryption.current_keyring() is not first


@pytest.mark.parametrize("bad", ["s3cr3t-but-not-fernet", "é" * 44, NEW[:-4]])
def test_a_malformed_key_is_named_by_its_place_never_shown(bad: str) -> None:
    with pytest.raises(ImproperlyConfigured) as raised:
        encryption.keyring((NEW, bad))
    assert "SESSION_ENCRYPTION_KEYS: key 2 of 2 is not a Fernet key" in str(raised.value)
    assert bad not in str(raised.value) and NEW not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_a_malformed_key_stops_the_instance_at_start_up() -> None:
    secret = "s3cr3t-but-not-a-fernet-key"
    started = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=PROJECT_ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "SESSION_ENCRYPTION_KEYS": f"{NEW}, {secret}",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode != 0
    assert "ImproperlyConfigured: SESSION_ENCRYPTION_KEYS: key 2 of 2" in started.stderr
    assert secret not in started.stderr and NEW not in started.stderr


def test_redis_keeps_a_session_as_the_serializer_wrote_it_and_pickles_the_rest() -> None:
    kept = KeptAsBytes({})
    assert kept.dumps(b'{"cart":{}}') == b'{"cart":{}}'
    assert kept.loads(b"gAAAAABtoken") == b"gAAAAABtoken"
    assert kept.loads(kept.dumps({"a": 1})) == {"a": 1}  # Django's own engine stores a dict


# ------------------------------------------------------------------ the inspector


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
@pytest.mark.parametrize("mode", ["redis", "db", "cookie"])
def test_the_inspector_shows_how_the_store_holds_the_session(
    use_mode, settings, demo_user, demo_products, mode: str, encrypted: bool
) -> None:
    settings.SESSION_ENCRYPTION_KEYS = [NEW] if encrypted else []
    shopper = logged_in_with_a_cart(use_mode(mode), demo_products)
    response = shopper.call("get", "/api/whoami/")
    stored: dict[str, Any] = response.json()["session"]["stored_as"]
    signed = mode != "redis"  # a row and a cookie are signed; Redis holds the serializer's bytes
    inner = stored["decoded"] if signed else stored["preview"]
    assert inner.startswith("gAAAAA" if encrypted else '{"')
    assert stored["encrypted"] is encrypted
    assert len(stored["preview"]) <= encryption_preview_limit()
    assert ":" not in stored["preview"] or not signed  # never a signature
    assert shopper.session_cookie() not in response.content.decode()
    page = shopper.call("get", "/").content.decode()
    assert "stored as" in page and ("encrypted (Fernet)" in page) is encrypted


def encryption_preview_limit() -> int:
    from shop.inspector import PREVIEW_CHARACTERS

    return PREVIEW_CHARACTERS + 1  # and the ellipsis


def test_jwt_mode_has_no_stored_session_to_show(use_mode) -> None:
    shopper = Shopper(use_mode("jwt"))
    assert shopper.whoami()["session"]["stored_as"] is None


# ------------------------------------------------------------------ the attack's reading


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
@pytest.mark.parametrize("mode", ["cookie", "db", "redis", "cached_db"])
def test_the_attack_reads_what_a_store_holds_only_without_encryption(
    use_mode, settings, request, demo_user, demo_products, mode: str, encrypted: bool
) -> None:
    settings.SESSION_ENCRYPTION_KEYS = [NEW] if encrypted else []
    shopper = logged_in_with_a_cart(use_mode(mode), demo_products)
    where = [f"copy {number}" for number in range(1, 3)]
    copies = dict(zip(where, stored_copies(mode, shopper.session_cookie(), request), strict=False))
    observed, detail = attack.what_was_read(copies)
    if encrypted:
        assert observed == attack.UNREADABLE
        assert "a Fernet token (gAAAAA…)" in detail
    else:
        assert observed == attack.READABLE
        assert f"user id {demo_user.pk}" in detail and f"'{demo_products[0]}': {QUANTITY}" in detail


def test_the_attack_finds_nothing_rather_than_call_a_missing_session_unreadable() -> None:
    assert attack.what_was_read({})[0] == "nothing found"


def test_a_jwt_mode_has_no_stored_session_to_read_and_says_a_jwt_is_readable() -> None:
    outcome = attack.read_the_session("http://unused", "jwt", "user1", run_dir=None)
    assert (outcome.expected, outcome.observed) == ("not applicable", "not applicable")
    assert "signed, not encrypted" in outcome.detail


def test_the_attack_table_says_signed_is_not_secret_when_it_read_a_session() -> None:
    read = attack.Outcome(attack.READ_COOKIE, attack.READABLE, attack.READABLE)
    assert attack.READ_NOTE in attack.table({"cookie": [read]})
    assert attack.READ_NOTE not in attack.table({"cookie": []})
