"""The idle limit moves a session's expiry only: a read never saves the session it read.

With ``SESSION_IDLE_S`` set, ``shop.timeouts.IdleTimeoutMiddleware`` moves on
the expiry of every session a request read. Saving the session for that
would write back the whole dictionary the request loaded, over whatever a
concurrent request (another tab, another instance) wrote meanwhile: a lost
cart change, its version rolled back, caused by a GET. Each engine that
can ``touch_expiry`` moves the expiry alone; these tests change a session
between a request's read and its end, and find the change kept and the
expiry moved, in every place the session lives. The cookie, which the
middleware now sends itself, carries what Django's own would.
"""

from __future__ import annotations

import logging
import time
from email.utils import parsedate_to_datetime
from importlib import import_module
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.backends.base import SessionBase
from django.core.cache import caches
from django.utils import timezone

from sessions_lab.modes import get_mode
from sessions_lab.waiting import wait_until
from shop import timeouts
from shop.api import views as api_views
from shop.sessions import cookie
from tests.conftest import SESSION_MODES
from tests.shoppers import Shopper
from tests.test_conditional_writes import first_products, put
from tests.test_session_timeouts import apply_timeouts, copy_of, logged_in_shopper

pytestmark = pytest.mark.django_db

HOUR = 3600  # the idle limit: nothing here waits for it
MINUTE = 60  # the age a concurrent write saves with: a touch must move it on to HOUR
# Every engine but the signed cookie's, which is the session itself: it is re-signed.
TOUCHING_MODES = [name for name in SESSION_MODES if name != "cookie"]


@pytest.fixture(params=TOUCHING_MODES)
def touching_mode(request: pytest.FixtureRequest, use_mode, settings, monkeypatch) -> str:
    """Each mode whose engine moves an expiry alone, with an idle limit of an hour."""
    mode = use_mode(request.param)
    apply_timeouts(settings, monkeypatch, idle=HOUR)
    return mode


@pytest.fixture(params=SESSION_MODES)
def idle_session_mode(request: pytest.FixtureRequest, use_mode, settings, monkeypatch) -> str:
    """Each mode that keeps a server or cookie session, with an idle limit of an hour."""
    mode = use_mode(request.param)
    apply_timeouts(settings, monkeypatch, idle=HOUR)
    return mode


def engine() -> Any:
    return import_module(django_settings.SESSION_ENGINE)


def replicated(store: SessionBase) -> SessionBase:
    """``store``'s session, once a fresh read finds it (the replica follows the primary)."""
    assert wait_until(lambda: engine().SessionStore(store.session_key).load(), 5)
    return store


def stored(mode: str, key: str) -> list[dict[str, Any]]:
    """The session as each place that keeps it holds it now (the replicated Valkey: its
    primary, which every write reaches first; ``cached_db``: the Redis copy and the row)."""
    store = engine().SessionStore(key)
    if mode == "replicated":
        return [store.serializer().loads(store._primary.get(store.cache_key))]
    if mode == "cached_db":
        row = store.model.objects.get(session_key=key)
        return [store._cache.get(store.cache_key), store.decode(row.session_data)]
    return [store.load()]


def lives(mode: str, key: str) -> list[float]:
    """Seconds before each place that keeps the session forgets it."""
    store = engine().SessionStore(key)
    left = []
    if mode in ("db", "cached_db"):
        row = store.model.objects.get(session_key=key)
        left.append((row.expire_date - timezone.now()).total_seconds())
    if mode == "replicated":
        left.append(store._primary.ttl(store.cache_key))
    if mode in ("sticky", "redis", "memcached", "cached_db"):
        left.append(cache_ttl(store.cache_key))
    return left


def cache_ttl(name: str) -> float:
    cache = caches["sessions"]
    if hasattr(cache, "ttl"):  # django-redis
        return cache.ttl(name)
    key = cache.make_key(name)
    if hasattr(cache, "_expire_info"):  # local memory
        return cache._expire_info[key] - time.time()
    # memcached: the meta protocol's remaining TTL ("HD t59"), from the node holding the key
    reply = cache._cache._get_client(key).raw_command(f"mg {key} t", b"\r\n")
    return float(reply.split(b" t")[1])


def test_every_engine_but_the_signed_cookie_moves_an_expiry_alone() -> None:
    for mode in TOUCHING_MODES:
        assert hasattr(import_module(get_mode(mode).session_engine).SessionStore, "touch_expiry")
    assert not hasattr(cookie.SessionStore, "touch_expiry")


def test_a_read_moves_the_expiry_and_never_saves_over_a_concurrent_change(
    touching_mode: str, settings
) -> None:
    first = engine().SessionStore()
    first.update({"cart": {"1": 1}, "_auth_user_id": "4"})
    first.save()
    key = first.session_key
    reader = replicated(engine().SessionStore(key))
    assert reader["cart"] == {"1": 1}  # request 1 (a GET) reads the session…
    settings.SESSION_COOKIE_AGE = MINUTE
    writer = engine().SessionStore(key)
    writer["cart"] = {"1": 2}  # … request 2 (a PUT, elsewhere) changes it…
    writer.save()
    assert all(0 < left <= MINUTE for left in lives(touching_mode, key))
    settings.SESSION_COOKIE_AGE = HOUR
    assert timeouts.refresh_expiry(reader)  # … and request 1 ends: its expiry is moved on
    assert not reader.modified  # SessionMiddleware saves nothing after it
    places = stored(touching_mode, key)
    assert places == [{"cart": {"1": 2}, "_auth_user_id": "4"}] * len(places)  # request 2's
    assert all(HOUR - 5 < left <= HOUR for left in lives(touching_mode, key))


def test_a_touch_brings_back_no_session_ended_meanwhile(touching_mode: str) -> None:
    first = engine().SessionStore()
    first["cart"] = {"1": 1}
    first.save()
    reader = replicated(engine().SessionStore(first.session_key))
    assert reader["cart"] == {"1": 1}
    engine().SessionStore(first.session_key).delete()  # a logout in another request
    assert not timeouts.refresh_expiry(reader)  # no cookie to send again
    assert engine().SessionStore().exists(first.session_key) is False


def test_a_cart_read_overlapping_a_write_keeps_the_write(
    touching_mode: str, demo_user, monkeypatch
) -> None:
    reader = logged_in_shopper(touching_mode)
    other_tab = copy_of(reader)  # the same session, from another tab or instance
    product = first_products(1)[0]
    read_cart = api_views.quick_cart

    def a_put_lands_meanwhile(request):
        cart = read_cart(request)  # the GET has read the session and its cart…
        monkeypatch.setattr(api_views, "quick_cart", read_cart)
        assert put(other_tab, product, 3).status_code == 200  # … then the PUT ends first
        return cart

    monkeypatch.setattr(api_views, "quick_cart", a_put_lands_meanwhile)
    answered = reader.call("get", "/api/cart/")
    assert answered.status_code == 200
    assert answered["ETag"] == '"cart-0"'  # what it read
    assert answered.cookies["sessionid"]["max-age"] == HOUR  # its expiry moved on
    # The PUT's cart at the PUT's version (once the replica has it, in ``replicated``)…
    after = wait_until(lambda: read_past(reader, '"cart-0"'), 5)
    assert after and after["ETag"] == '"cart-1"'
    assert {item["product"]: item["quantity"] for item in after.json()["items"]} == {product: 3}
    assert put(reader, product, 1, if_match='"cart-1"').status_code == 200  # … and If-Match holds


def read_past(shopper: Shopper, etag: str) -> Any:
    """The cart's answer, once its ETag is no longer ``etag``; None before."""
    answer = shopper.call("get", "/api/cart/")
    return answer if answer["ETag"] != etag else None


def test_a_read_sends_the_cookie_again_as_a_save_would(idle_session_mode: str, demo_user) -> None:
    shopper = Shopper(idle_session_mode)
    saved = shopper.login()  # a save: Django's SessionMiddleware sets the cookie
    read = shopper.call("get", "/api/cart/")
    written, touched = saved.cookies["sessionid"], read.cookies["sessionid"]
    for attribute in ("max-age", "path", "domain", "secure", "httponly", "samesite"):
        assert touched[attribute] == written[attribute], attribute
    assert touched["max-age"] == HOUR
    expires = parsedate_to_datetime(touched["expires"]).timestamp()
    assert time.time() + HOUR - 5 < expires <= time.time() + HOUR + 1
    if idle_session_mode != "cookie":  # the same session, its key unchanged
        assert touched.value == written.value
    assert "Cookie" in read["Vary"]


def test_a_touch_the_store_refuses_leaves_the_expiry_and_answers(
    use_mode, settings, monkeypatch, replication, caplog
) -> None:
    """``replicated`` with no primary: the read is answered from the replica, one warning."""
    use_mode("replicated")
    apply_timeouts(settings, monkeypatch, idle=HOUR)
    settings.SESSION_REPLICATION = {**settings.SESSION_REPLICATION, "SOCKET_TIMEOUT": 0.2}
    first = engine().SessionStore()
    first["cart"] = {"1": 1}
    first.save()
    reader = replicated(engine().SessionStore(first.session_key))
    with replication.paused(replication.primary):
        assert reader["cart"] == {"1": 1}
        with caplog.at_level(logging.WARNING, logger="shop.sessions"):
            assert not timeouts.refresh_expiry(reader)
    assert [r.getMessage() for r in caplog.records if r.name == "shop.sessions"] == [
        "session expiry not moved now: its store cannot be reached"
    ]
    assert not reader.modified
