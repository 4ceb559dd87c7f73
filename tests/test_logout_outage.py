"""A logout while Redis cannot answer is refused and said so: never "logged out" with a copy left behind.

Against the real Valkey the suite runs (``redis_url``): paused with SIGSTOP,
as ``sessions-lab kill redis --signal STOP`` pauses the lab's (every command
times out), or swapped for a port where nothing listens (a Redis that is
down). The engine first, through its sync and its async methods, then what
a client sees, then where the promise is shown. ``tests/cluster/
test_logout_outage.py`` runs the same story through nginx and real processes.
``memcached`` keeps another promise (``COPY_SURVIVES``): its client skips a
node it cannot reach, so the logout finds no session and says "logged out";
a paused node's copy is served again once it resumes.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth import update_session_auth_hash
from django.contrib.sessions.models import Session
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from sessions_lab import attack
from sessions_lab.modes import MODES, OutageLogout, get_mode
from shop.models import Order, Product
from shop.sessions import cached_db
from shop.sessions.cached_db import SessionStore
from shop.sessions.errors import SessionChangeRefused
from tests.conftest import apply_mode
from tests.memcached_server import RUNNING as MEMCACHED_RUNNING
from tests.memcached_server import memcached_servers
from tests.memcached_server import paused as memcached_paused
from tests.redis_server import free_port, paused
from tests.shoppers import Shopper
from tests.test_session_engines import through

pytestmark = pytest.mark.django_db

DOWN = "redis://127.0.0.1:9/0"  # nothing listens on port 9
LOGGED_IN = {"_auth_user_id": "1", "cart": {"lines": {"3": 2}}}
Outage = Callable[[], AbstractContextManager[None]]
Call = Callable[..., Any]


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest) -> Call:
    """The engine through its sync methods, or their async twins (see test_session_engines)."""
    return through(request.param)


@pytest.fixture(autouse=True)
def cached_db_mode(use_mode) -> None:
    use_mode("cached_db")


@pytest.fixture
def redis_at(settings, redis_url: str, cached_db_mode: None) -> Iterator[Callable[[str], None]]:
    """Point the shop's ``cached_db`` sessions at a Redis: the suite's, or ``DOWN``; back after."""
    yield lambda url: apply_mode(settings, "cached_db", url)
    apply_mode(settings, "cached_db", redis_url)


@pytest.fixture(params=["down", "paused"])
def outage(request: pytest.FixtureRequest, redis_at, redis_url: str) -> Outage:
    """A block during which Redis cannot answer; after it, Redis is back with all its data."""

    @contextmanager
    def redis_unreachable() -> Iterator[None]:
        if request.param == "paused":
            with paused(redis_url):
                yield
            return
        redis_at(DOWN)
        try:
            yield
        finally:
            redis_at(redis_url)

    return redis_unreachable


def logged_in_session() -> str:
    """A session saved while Redis is up: a row, and its copy in Redis."""
    session = SessionStore()
    session.update(LOGGED_IN)
    session.save()
    SessionStore(session.session_key).load()  # a read: the copy is in Redis now
    return session.session_key


def copy_in_redis(key: str) -> dict[str, Any] | None:
    return SessionStore()._cache.get(SessionStore.cache_key_prefix + key)  # read as the engine does


def row(key: str) -> dict[str, Any] | None:
    found = Session.objects.filter(session_key=key).first()
    return found.get_decoded() if found else None


# ------------------------------------------------------------------ the engine


def test_cached_db_reads_the_row_while_redis_cannot_answer(outage: Outage, call: Call) -> None:
    key = logged_in_session()
    with outage():
        assert call(SessionStore(key), "load") == LOGGED_IN


def test_cached_db_logout_during_a_redis_outage_is_refused_and_changes_nothing(
    outage: Outage, call: Call
) -> None:
    key = logged_in_session()
    with outage():
        started = time.monotonic()
        session = SessionStore(key)
        assert call(session, "get", "_auth_user_id") == "1"  # read from the row
        with pytest.raises(SessionChangeRefused):
            call(session, "flush")
        # One Redis timeout for the whole request, not one per command.
        assert time.monotonic() - started < 2.0
        assert row(key) == LOGGED_IN
    assert SessionStore(key).load() == LOGGED_IN  # still logged in: the user was told


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda s, via: via(s, "cycle_key"), id="cycle_key (login)"),
        pytest.param(lambda s, via: via(s, "delete"), id="delete"),
        pytest.param(lambda s, via: via(s, "__setitem__", "cart", {}), id="a cart change"),
        pytest.param(lambda s, via: via(s, "save"), id="save"),
    ],
)
def test_cached_db_refuses_every_change_to_a_session_while_redis_is_down(
    redis_at, redis_url: str, call: Call, change: Callable[[SessionStore, Call], None]
) -> None:
    key = logged_in_session()
    redis_at(DOWN)
    with pytest.raises(SessionChangeRefused):
        change(SessionStore(key), call)
    assert row(key) == LOGGED_IN
    assert Session.objects.count() == 1  # no new row either
    redis_at(redis_url)
    assert copy_in_redis(key) == LOGGED_IN


def test_cached_db_refuses_a_password_change_while_redis_is_down(redis_at, demo_user) -> None:
    key = logged_in_session()
    redis_at(DOWN)
    request = SimpleNamespace(session=SessionStore(key), user=demo_user)
    with pytest.raises(SessionChangeRefused):
        update_session_auth_hash(request, demo_user)  # it rotates the session key
    assert row(key) == LOGGED_IN


def test_cached_db_refuses_a_change_before_the_transaction_around_it_commits(redis_at) -> None:
    key = logged_in_session()
    redis_at(DOWN)
    session = SessionStore(key)
    product = Product.objects.first()
    with pytest.raises(SessionChangeRefused), transaction.atomic():
        product.price = 0  # the view's own write, e.g. an order being placed
        product.save()
        session["cart"] = {}  # ...then emptying the cart: refused here, so rolled back
    product.refresh_from_db()
    assert product.price != 0


def test_cached_db_needs_no_redis_for_a_new_session(redis_at, redis_url: str, call: Call) -> None:
    redis_at(DOWN)
    session = SessionStore()
    call(session, "cycle_key")  # a login without a session before it
    call(session, "update", LOGGED_IN)
    call(session, "save")
    redis_at(redis_url)
    assert copy_in_redis(session.session_key) is None  # nothing was written to Redis
    assert SessionStore(session.session_key).load() == LOGGED_IN


def test_cached_db_logout_removes_a_copy_that_a_concurrent_read_put_back(monkeypatch) -> None:
    key = logged_in_session()
    delete_row = cached_db.DatabaseStore.delete

    def read_elsewhere_then_delete(store: SessionStore, session_key: str) -> None:
        assert SessionStore(key).load() == LOGGED_IN  # another request reads the row...
        assert copy_in_redis(key) == LOGGED_IN  # ...and copies it back into Redis
        delete_row(store, session_key)

    monkeypatch.setattr(cached_db.DatabaseStore, "delete", read_elsewhere_then_delete)
    SessionStore(key).flush()
    assert copy_in_redis(key) is None
    assert row(key) is None
    assert SessionStore(key).load() == {}


def test_cached_db_read_of_an_older_row_does_not_overwrite_a_newer_save(monkeypatch) -> None:
    key = logged_in_session()
    caches["sessions"].delete(SessionStore.cache_key_prefix + key)  # a read will miss
    reader = SessionStore(key)
    read_row = reader._get_session_from_db

    def row_then_a_save_elsewhere() -> Session:
        found = read_row()
        writer = SessionStore(key)
        writer["cart"] = {"lines": {"9": 1}}
        writer.save()
        return found

    monkeypatch.setattr(reader, "_get_session_from_db", row_then_a_save_elsewhere)
    assert reader.load() == LOGGED_IN  # what it read, from before the save
    assert copy_in_redis(key)["cart"] == {"lines": {"9": 1}}  # the save's copy stands


def test_cached_db_a_retried_logout_after_a_half_done_one_is_refused_or_clears_the_copy(
    monkeypatch, redis_at, redis_url: str
) -> None:
    """Row deleted, the copy put back by a read, the last DELETE lost: the retry must not lie."""
    key = logged_in_session()
    first = SessionStore(key)
    first.load()
    delete_row, evict, evictions = cached_db.DatabaseStore.delete, first._evict, []

    def read_elsewhere_then_delete(store: SessionStore, session_key: str) -> None:
        SessionStore(key).load()  # copies the row back into Redis
        delete_row(store, session_key)

    def evict_but_lose_the_third(session_key: str) -> None:
        evictions.append(session_key)
        if len(evictions) == 3:
            raise SessionChangeRefused("Redis went away")
        evict(session_key)

    monkeypatch.setattr(cached_db.DatabaseStore, "delete", read_elsewhere_then_delete)
    monkeypatch.setattr(first, "_evict", evict_but_lose_the_third)
    with pytest.raises(SessionChangeRefused):
        first.flush()
    monkeypatch.undo()
    assert (row(key), copy_in_redis(key)) == (None, LOGGED_IN)

    redis_at(DOWN)  # retried while Redis is down: the row is gone, the copy is not
    retry = SessionStore(key)
    assert retry.load() == {}
    with pytest.raises(SessionChangeRefused):
        retry.flush()
    redis_at(redis_url)  # retried once it is back: done
    SessionStore(key).flush()
    assert copy_in_redis(key) is None
    assert SessionStore(key).load() == {}


def test_cached_db_will_not_run_on_a_cache_that_ignores_its_errors(settings) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "sessions": {
            **settings.CACHES["sessions"],
            "OPTIONS": {**settings.CACHES["sessions"]["OPTIONS"], "IGNORE_EXCEPTIONS": True},
        },
    }
    with pytest.raises(ImproperlyConfigured, match="IGNORE_EXCEPTIONS"):
        SessionStore()


# -------------------------------------------------------------- what a client sees


def refused_logout(shopper, where: str) -> None:
    """Log out through the API or the page, and check it was refused (503) and said so,
    the browser's cookie untouched."""
    if where == "api":
        refused = shopper.logout()
        detail = refused.json()["detail"]
    else:
        refused = shopper.client.post("/accounts/logout/", {"csrfmiddlewaretoken": shopper.csrf})
        detail = refused.content.decode()
    assert refused.status_code == 503
    assert refused["Retry-After"] == "5"
    assert detail.startswith("Could not log you out")
    assert "sessionid" not in refused.cookies  # the browser keeps its cookie: nothing changed


def logged_in_shopper(mode: str) -> tuple[Shopper, int]:
    shopper = Shopper(mode)
    shopper.client.raise_request_exception = False  # as a server answers
    assert shopper.login().status_code == 200
    product = Product.objects.order_by("pk").values_list("pk", flat=True).first()
    assert shopper.set_quantity(product, 2).status_code == 200
    return shopper, product


@pytest.mark.parametrize("mode", ["redis", "cached_db"])
@pytest.mark.parametrize("where", ["api", "page"])
def test_logout_while_redis_is_down_is_a_503_that_says_the_logout_did_not_happen(
    settings, redis_url: str, demo_user, mode: str, where: str
) -> None:
    apply_mode(settings, mode, redis_url)
    shopper, product = logged_in_shopper(mode)
    old_cookie = shopper.session_cookie()
    apply_mode(settings, mode, DOWN)
    refused_logout(shopper, where)

    apply_mode(settings, mode, redis_url)  # Redis is back, with its data
    assert shopper.whoami()["username"] == "alice"  # still logged in, as the 503 said
    assert shopper.cart_lines() == {product: 2}
    assert shopper.logout().status_code == 200  # the retry logs out...
    thief = Shopper(mode)
    thief.client.cookies["sessionid"] = old_cookie
    assert thief.whoami()["authenticated"] is False  # ...and the old cookie is worthless


def test_cached_db_checkout_while_redis_is_down_places_no_order(
    settings, redis_url: str, demo_user
) -> None:
    shopper, product = logged_in_shopper("cached_db")
    apply_mode(settings, "cached_db", DOWN)
    refused = shopper.checkout()
    assert refused.status_code == 503
    assert "your session was not changed" in refused.json()["detail"]
    assert Order.objects.count() == 0  # the order's transaction rolled back with the refusal
    apply_mode(settings, "cached_db", redis_url)
    assert shopper.cart_lines() == {product: 2}
    assert shopper.checkout().status_code == 201


# ------------------------------------------------------------ memcached: the copy survives


def node_holding(shopper: Shopper) -> str:
    """The ``host:port`` of the memcached node the shopper's session hashes to."""
    node = int(shopper.call("get", "/api/whoami/")["X-Session-Node"])
    return settings_location()[node - 1]


@contextmanager
def back_to_cached_db(settings, redis_url: str) -> Iterator[None]:
    """After the block, the module's mode again (its clean-up must not meet stopped nodes)."""
    try:
        yield
    finally:
        apply_mode(settings, "cached_db", redis_url)


def settings_location() -> list[str]:
    from django.conf import settings

    return settings.CACHES["sessions"]["LOCATION"]


@pytest.mark.parametrize("fault", ["paused", "killed"])
def test_memcached_logout_while_its_node_cannot_answer_is_logged_out_at_once(
    settings, redis_url: str, tmp_path, demo_user, fault: str
) -> None:
    """The client skips a node it cannot reach: the session is not found, so the user is
    already logged out and the logout says so (200). A paused node still holds the copy,
    served again once it resumes; a killed one took it along."""
    assert get_mode("memcached").logout_while_store_down is OutageLogout.COPY_SURVIVES
    with memcached_servers(tmp_path) as servers, back_to_cached_db(settings, redis_url):
        apply_mode(settings, "memcached", redis_url, servers)
        shopper, product = logged_in_shopper("memcached")
        old_cookie = shopper.session_cookie()
        server = node_holding(shopper)
        with memcached_paused(server) if fault == "paused" else nullcontext():
            if fault == "killed":
                MEMCACHED_RUNNING[server].kill()
            logout = shopper.logout()
            assert logout.status_code == 200, logout.content
            assert shopper.whoami()["authenticated"] is False
        apply_mode(settings, "memcached", redis_url, servers)  # clients that try every node again
        thief = Shopper("memcached")
        thief.client.cookies["sessionid"] = old_cookie
        if fault == "paused":
            assert thief.whoami()["username"] == "alice"  # the copy came back with its node
            assert thief.cart_lines() == {product: 2}
        else:
            assert thief.whoami()["authenticated"] is False


@pytest.mark.timeout(30)
@pytest.mark.parametrize("where", ["api", "page"])
def test_replicated_logout_while_no_primary_is_known_is_a_503_and_the_session_stays(
    settings, use_mode, demo_user, where: str
) -> None:
    """Reads go on from the instance's replica, but the delete needs the primary: while no
    Sentinel names one, the logout is refused and says so, cookie and session kept."""
    assert get_mode("replicated").logout_while_store_down is OutageLogout.REFUSED
    use_mode("replicated")
    shopper, product = logged_in_shopper("replicated")
    old_cookie = shopper.session_cookie()
    sentinels = settings.SESSION_REPLICATION["SENTINELS"]
    no_sentinel = [("127.0.0.1", free_port()) for _ in sentinels]  # nothing listens there
    settings.SESSION_REPLICATION = {**settings.SESSION_REPLICATION, "SENTINELS": no_sentinel}
    refused_logout(shopper, where)
    assert shopper.whoami()["username"] == "alice"  # read from the replica: still logged in

    settings.SESSION_REPLICATION = {**settings.SESSION_REPLICATION, "SENTINELS": sentinels}
    assert shopper.cart_lines() == {product: 2}
    assert shopper.logout().status_code == 200  # the retry logs out...
    thief = Shopper("replicated")
    thief.client.cookies["sessionid"] = old_cookie
    assert thief.whoami()["authenticated"] is False  # ...and the old cookie is worthless


# ------------------------------------------------------------ where the promise shows


def test_the_inspector_says_what_a_logout_does_while_the_store_is_down(mode: str) -> None:
    shopper = Shopper(mode)
    page = shopper.client.get("/").content.decode()
    inspector = html.unescape(page.split('aria-label="Session inspector"', 1)[1])
    assert get_mode(mode).logout_while_store_down_text in inspector


def test_the_attack_table_notes_what_each_logout_does_while_the_store_is_down() -> None:
    notes = attack.table({name: [] for name in MODES}).split(attack.LOGOUT_WHILE_STORE_DOWN, 1)[1]
    for mode in MODES.values():
        assert f"\n{mode.name}: {mode.logout_while_store_down_text}.\n" in notes
