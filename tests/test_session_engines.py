"""The shop's session engines change Django's in one place each: they must read what Django's read.

``db`` reads its row with plain SQL on the driver's cursor; ``cookie``
checks each signed cookie once per process; ``cache`` makes an unreachable
Redis an error; ``cached_db`` clears Redis before every change. Below the
engine-specific tests, Django's session contract (what its own
``SessionTestsMixin`` checks of every backend, restated here: that mixin
ships with Django's test suite, not its package) runs against each of the
shop's engines and, as the reference, Django's own — once through the sync
methods and once through their async twins, which must behave alike — and
the shop's engines once more with sessions encrypted (SESSION_ENCRYPTION_KEYS).
"""

from collections.abc import Callable
from contextlib import nullcontext
from datetime import timedelta
from importlib import import_module
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from cryptography.fernet import Fernet
from django.contrib.sessions.backends.base import SessionBase, UpdateError
from django.contrib.sessions.backends.db import SessionStore as DjangoSessionStore
from django.contrib.sessions.backends.signed_cookies import SessionStore as DjangoCookieStore
from django.core import signing
from django.db import DatabaseError, connection, transaction
from django.db.transaction import TransactionManagementError
from redis.sentinel import MasterNotFoundError

from sessions_lab.waiting import wait_until
from shop import db, verified
from shop.cart import signed_cookie_size
from shop.sessions import cookie, replicated
from shop.sessions.db import SessionStore
from shop.sessions.errors import UNREACHABLE, ReplicaNotAcknowledged
from tests.conftest import apply_mode
from tests.redis_server import free_port
from tests.valkey_replication import Replication, valkey_replication

pytestmark = pytest.mark.django_db

CART = {"lines": {"1": 2, "7": 3}}


def saved_session(**values: object) -> SessionStore:
    session = SessionStore()
    session.update(values)
    session.save()
    return session


def test_a_saved_session_reads_back_as_djangos_engine_reads_it() -> None:
    key = saved_session(cart=CART, _auth_user_id="4").session_key
    ours, djangos = SessionStore(key), DjangoSessionStore(key)
    assert dict(ours.items()) == dict(djangos.items()) == {"cart": CART, "_auth_user_id": "4"}
    assert ours.session_key == key


def test_an_expired_session_is_not_read() -> None:
    session = SessionStore()
    session["cart"] = CART
    session.set_expiry(-60)
    session.save()
    stale = SessionStore(session.session_key)
    assert dict(stale.items()) == {}
    assert stale.session_key is None  # a fresh key will be made if anything is saved


def test_a_save_the_database_refuses_is_its_error_and_a_deleted_row_an_update_error(
    monkeypatch,
) -> None:
    from django.contrib.sessions.backends.base import UpdateError

    from shop.sessions import db as session_db

    session = saved_session(cart=CART)
    session["cart"] = {"lines": {"1": 1}}
    broken = session_db.SessionSQL(select="", update="UPDATE no_such_table SET x = %s, y = %s")
    monkeypatch.setattr(session_db, "_statements", lambda model, alias: broken)
    # A database down (or refusing) mid-request: not "the session was deleted" (400).
    with pytest.raises(DatabaseError):
        session.save()
    monkeypatch.undo()
    SessionStore.get_model_class().objects.filter(session_key=session.session_key).delete()
    with pytest.raises(UpdateError):  # a logout elsewhere: Django's 400 is right here
        session.save()


@pytest.mark.parametrize("key", ["x" * 32, "short", "../../etc/passwd", "a" * 41, ""])
def test_an_unknown_or_malformed_key_reads_as_an_empty_session(key: str) -> None:
    session = SessionStore(key)
    assert dict(session.items()) == {}
    assert session.session_key is None


def test_a_row_with_tampered_data_reads_as_empty_not_an_error() -> None:
    session = saved_session(cart=CART)
    SessionStore.get_model_class().objects.filter(session_key=session.session_key).update(
        session_data="tampered:data"
    )
    assert dict(SessionStore(session.session_key).items()) == {}


def test_fetch_all_reads_what_djangos_cursor_reads_and_raises_djangos_errors() -> None:
    saved_session(cart=CART)
    sql = "SELECT session_key, expire_date FROM django_session WHERE session_key LIKE %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, ["%"])
        expected = cursor.fetchall()
    assert db.fetch_all(connection, sql, ["%"]) == expected != []
    with pytest.raises(DatabaseError):
        db.fetch_all(connection, "SELECT nothing FROM no_such_table WHERE x = %s", [1])


def test_placeholders_are_rewritten_for_the_driver_once_and_literally_kept() -> None:
    sql = "SELECT 1 WHERE a = %s AND b LIKE '100%%' AND c = %s"
    assert db._in_style(sql, "qmark") == "SELECT 1 WHERE a = ? AND b LIKE '100%' AND c = ?"
    assert db._in_style(sql, "format") == sql


def test_fetch_all_refuses_to_read_in_a_broken_transaction() -> None:
    with transaction.atomic():
        transaction.set_rollback(True)
        with pytest.raises(TransactionManagementError):
            db.fetch_all(connection, "SELECT 1 WHERE 1 = %s", [1])


def cookie_session(**values: object) -> str:
    session = cookie.SessionStore()
    session.update(values)
    session.save()
    return session.session_key


def test_a_signed_cookie_reads_as_djangos_engine_reads_it_and_theirs_as_ours() -> None:
    ours = cookie_session(cart=CART, _auth_user_id="4")
    djangos = DjangoCookieStore()
    djangos.update({"cart": CART})
    djangos.save()
    assert dict(DjangoCookieStore(ours).items()) == {"cart": CART, "_auth_user_id": "4"}
    for _ in range(2):  # checked, then remembered
        assert dict(cookie.SessionStore(ours).items()) == {"cart": CART, "_auth_user_id": "4"}
        assert dict(cookie.SessionStore(djangos.session_key).items()) == {"cart": CART}


def test_a_signed_cookie_is_checked_once_and_each_load_is_a_fresh_copy(monkeypatch) -> None:
    elsewhere = DjangoCookieStore()  # signed by another instance: this one never saw it
    elsewhere.update({"cart": CART})
    elsewhere.save()
    value = elsewhere.session_key
    checks = []
    check = signing.loads
    monkeypatch.setattr(
        cookie.signing, "loads", lambda *args, **kw: checks.append(args) or check(*args, **kw)
    )
    first = cookie.SessionStore(value)
    first["cart"]["lines"]["1"] = 99  # a view changing what it loaded, in place
    again = cookie.SessionStore(value)
    assert again["cart"] == CART
    assert len(checks) == 1


def test_a_cookie_signed_here_is_signed_once_and_never_checked_here(monkeypatch) -> None:
    checks, signatures = [], []
    check, sign = signing.loads, signing.dumps
    monkeypatch.setattr(
        cookie.signing, "loads", lambda *args, **kw: checks.append(args) or check(*args, **kw)
    )
    monkeypatch.setattr(
        signing, "dumps", lambda *args, **kw: signatures.append(args) or sign(*args, **kw)
    )
    session = cookie.SessionStore()
    session["cart"] = CART
    assert signed_cookie_size(session) > 0  # a cart write measures the cookie first...
    session.save()  # ... then saves it: one signature for both
    assert len(signatures) == 1
    session["cart"] = {"lines": {"1": 1}}
    session.save()  # changed since: signed again
    assert len(signatures) == 2
    assert dict(cookie.SessionStore(session.session_key).items()) == {"cart": {"lines": {"1": 1}}}
    assert checks == []


@pytest.mark.parametrize(
    "mangle",
    [
        lambda v: v[:-2] + ("AA" if v[-2:] != "AA" else "BB"),
        lambda v: v[:20],
        lambda v: "forged-payload:1aBcDe:not-a-signature",
    ],
    ids=["tampered", "truncated", "forged"],
)
def test_a_changed_cookie_is_checked_in_full_and_starts_afresh(mangle) -> None:
    value = cookie_session(cart=CART)
    assert dict(cookie.SessionStore(value).items()) == {"cart": CART}  # remembered now
    bad = cookie.SessionStore(mangle(value))
    assert dict(bad.items()) == {}
    assert bad.modified  # as Django's: a new cookie replaces the bad one


def test_a_remembered_cookie_is_forgotten_once_older_than_the_session_age(
    monkeypatch, settings
) -> None:
    value = cookie_session(cart=CART)
    signed_at = signing.b62_decode(value.rsplit(":", 2)[1])
    now = signed_at
    monkeypatch.setattr(verified, "time", type("Clock", (), {"time": lambda: now}))
    assert dict(cookie.SessionStore(value).items()) == {"cart": CART}
    now = signed_at + settings.SESSION_COOKIE_AGE
    assert cookie.VERIFIED_COOKIES.get(value) is None


# ------------------------------------------------------------ Django's session contract

# (engine, the mode whose settings it needs: its cache, its database).
ENGINES = [
    ("shop.sessions.db", "db"),
    ("shop.sessions.cache", "redis"),
    ("shop.sessions.cache", "sticky"),
    ("shop.sessions.cache", "memcached"),
    ("shop.sessions.cached_db", "cached_db"),
    ("shop.sessions.cookie", "cookie"),
    # Django's own, the reference the contract is checked against.
    ("django.contrib.sessions.backends.db", "db"),
    ("django.contrib.sessions.backends.cache", "redis"),
    ("django.contrib.sessions.backends.cached_db", "cached_db"),
    ("django.contrib.sessions.backends.signed_cookies", "cookie"),
    # Django's cache engine on memcached nodes (real ones: tests/memcached_server.py),
    # each key on the node pymemcache's HashClient hashes it to.
    ("django.contrib.sessions.backends.cache", "memcached"),
    # Reads its replica, writes the primary the Sentinels name (tests/valkey_replication.py).
    ("shop.sessions.replicated", "replicated"),
]
# The async twin of each session method the contract calls, where its name is not a + name.
ASYNC_NAMES = {"__setitem__": "aset", "__contains__": "ahas_key"}
# The shop's engines run the contract a second time with sessions encrypted: (engine,
# mode, keys). Django's own are the reference, run in clear.
ENCRYPTION_KEYS = [Fernet.generate_key().decode(), Fernet.generate_key().decode()]
CASES = [(engine, mode, []) for engine, mode in ENGINES] + [
    (engine, mode, ENCRYPTION_KEYS) for engine, mode in ENGINES if engine.startswith("shop.")
]

Store = type[SessionBase]
Call = Callable[..., Any]


def engine_id(case: tuple[str, str, list[str]]) -> str:
    engine, mode, keys = case
    name = ("shop." if engine.startswith("shop.") else "django.") + engine.rsplit(".", 1)[1]
    return f"{name}-{mode}" + ("-encrypted" if keys else "")


def engine_in_mode(case: tuple[str, str, list[str]], use_mode, settings) -> Store:
    """The engine, with the mode's settings (its Redis, its nodes, its database) and keys applied."""
    engine, mode, keys = case
    use_mode(mode)
    settings.SESSION_ENCRYPTION_KEYS = keys
    return import_module(engine).SessionStore


@pytest.fixture(params=CASES, ids=engine_id)
def store(request: pytest.FixtureRequest, use_mode, settings) -> Store:
    """A session engine in its mode, its sessions stored in clear or encrypted."""
    return engine_in_mode(request.param, use_mode, settings)


def through(flavour: str) -> Call:
    """``call(session, "pop", key)``: through the sync method, or its async twin run to its end."""

    def through_sync(session: SessionBase, name: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(session, name)(*args, **kwargs)

    def through_async(session: SessionBase, name: str, *args: Any, **kwargs: Any) -> Any:
        twin = getattr(session, ASYNC_NAMES.get(name, f"a{name}"))
        return async_to_sync(twin)(*args, **kwargs)

    return through_async if flavour == "async" else through_sync


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest) -> Call:
    return through(request.param)


# A signed cookie has no server record: nothing to find, delete or rotate on a server.
SERVER_CASES = [
    case for case in CASES if not issubclass(import_module(case[0]).SessionStore, DjangoCookieStore)
]


@pytest.fixture(params=SERVER_CASES, ids=engine_id)
def server_store(request: pytest.FixtureRequest, use_mode, settings) -> Store:
    """An engine that keeps its sessions on a server (all but the signed cookies)."""
    return engine_in_mode(request.param, use_mode, settings)


def untouched(session: SessionBase) -> SessionBase:
    session.accessed = session.modified = False
    return session


def test_a_new_session_is_neither_read_nor_changed(store: Store, call: Call) -> None:
    session = store()
    assert (session.accessed, session.modified) == (False, False)
    assert call(session, "get", "cat") is None
    assert (session.accessed, session.modified) == (True, False)


def test_setting_a_value_changes_the_session_and_pop_returns_it(store: Store, call: Call) -> None:
    session = store()
    call(session, "__setitem__", "cat", "dog")
    assert session.modified is True
    untouched(session)
    assert call(session, "pop", "cat") == "dog"
    assert (session.accessed, session.modified) == (True, True)
    assert call(session, "get", "cat") is None


def test_pop_of_a_missing_key_gives_its_default_and_changes_nothing(
    store: Store, call: Call
) -> None:
    session = store()
    assert call(session, "pop", "cat", "none") == "none"
    assert call(session, "pop", "cat", default="none") == "none"
    assert (session.accessed, session.modified) == (True, False)
    with pytest.raises(KeyError):
        call(session, "pop", "cat")


def test_setdefault_and_update_change_the_session(store: Store, call: Call) -> None:
    session = store()
    assert call(session, "setdefault", "cat", "dog") == "dog"
    assert call(session, "setdefault", "cat", "fish") == "dog"
    assert session.modified is True
    other = store()
    call(other, "update", {"cat": 1})
    assert (other.modified, call(other, "get", "cat")) == (True, 1)


def test_reading_marks_the_session_read_and_never_changed(store: Store, call: Call) -> None:
    session = store()
    call(session, "__setitem__", "x", 1)
    for name, expected in [("__contains__", True), ("keys", ["x"]), ("values", [1])]:
        untouched(session)
        found = call(session, name, "x") if name == "__contains__" else list(call(session, name))
        assert found == expected
        assert (session.accessed, session.modified) == (True, False)


def test_a_saved_session_reads_back_alike_through_both_forms(store: Store, call: Call) -> None:
    session = store()
    call(session, "update", {"cart": CART, "_auth_user_id": "4"})
    call(session, "save")
    assert call(session, "get", "cart") == CART  # saving keeps the data
    saved = {"cart": CART, "_auth_user_id": "4"}
    assert store(session.session_key).load() == saved
    assert async_to_sync(store(session.session_key).aload)() == saved


def test_a_saved_session_exists_and_a_deleted_one_does_not(server_store: Store, call: Call) -> None:
    store = server_store
    session = store()
    call(session, "save")
    key = session.session_key
    assert call(session, "exists", key) is True
    call(session, "delete", key)
    assert call(session, "exists", key) is False
    assert store(key).load() == {}


def test_flush_ends_the_session_and_forgets_its_key(server_store: Store, call: Call) -> None:
    store = server_store
    session = store()
    call(session, "__setitem__", "foo", "bar")
    call(session, "save")
    key = session.session_key
    call(session, "flush")
    assert call(session, "exists", key) is False
    assert session.session_key is None
    assert (session.accessed, session.modified) == (True, True)
    assert store(key).load() == {}


@pytest.mark.parametrize("loaded", [True, False], ids=["loaded", "not-yet-loaded"])
def test_cycle_key_moves_the_data_to_a_new_key(
    server_store: Store, call: Call, loaded: bool
) -> None:
    store = server_store
    session = store()
    call(session, "update", {"a": "c", "b": "d"})
    call(session, "save")
    old = session.session_key
    if not loaded:
        session = store(old)
    call(session, "cycle_key")
    assert session.session_key != old
    assert call(session, "exists", old) is False
    assert dict(call(session, "items")) == {"a": "c", "b": "d"}
    call(session, "save")
    assert store(session.session_key).load() == {"a": "c", "b": "d"}
    assert store(old).load() == {}


def test_an_unknown_key_creates_no_record_and_is_replaced_on_save(
    server_store: Store, call: Call
) -> None:
    store = server_store
    session = store("someunknownkey")
    assert call(session, "load") == {}
    assert session.session_key is None
    assert call(session, "exists", "someunknownkey") is False
    call(session, "save")
    assert session.session_key not in (None, "someunknownkey")


def test_a_save_after_a_logout_elsewhere_fails_rather_than_resurrect(
    server_store: Store, call: Call
) -> None:
    store = server_store
    first = store()
    call(first, "__setitem__", "data", "one")
    call(first, "save", must_create=True)
    call(store(first.session_key), "delete")  # a logout in another request
    call(first, "__setitem__", "data", "two")
    with pytest.raises(UpdateError):
        call(first, "save")
    assert call(first, "load") == {}


def test_expiry_in_seconds_then_reset_to_the_default(store: Store, call: Call, settings) -> None:
    session = store()
    call(session, "set_expiry", 10)
    assert call(session, "get_expiry_age") == 10
    call(session, "set_expiry", None)
    assert call(session, "get_expiry_age") == settings.SESSION_COOKIE_AGE


def test_a_session_saved_already_expired_is_not_read(server_store: Store, call: Call) -> None:
    store = server_store
    session = store()
    call(session, "__setitem__", "foo", "bar")
    call(session, "set_expiry", -timedelta(seconds=10))
    call(session, "save")
    assert "foo" not in store(session.session_key)


# ---------------------------------------------------- an unreachable Redis, sync and async


@pytest.mark.parametrize(
    "engine", ["shop.sessions.cache", "django.contrib.sessions.backends.cache"]
)
def test_redis_mode_reads_an_unreachable_redis_as_an_error_in_both_forms(
    settings, redis_url: str, call: Call, engine: str
) -> None:
    apply_mode(settings, "redis", redis_url)
    session = import_module(engine).SessionStore()
    session["cart"] = CART
    session.save()
    apply_mode(settings, "redis", "redis://127.0.0.1:9/0")  # nothing listens on port 9
    stranded = import_module(engine).SessionStore(session.session_key)
    if engine.startswith("shop."):
        with pytest.raises(UNREACHABLE):
            call(stranded, "load")
    else:  # Django's: every visitor a stranger, and their next write a fresh session
        assert call(stranded, "load") == {}


# ------------------------------------- replicated: the replica reads, the primary Sentinel names

ReplicatedStore = type[replicated.SessionStore]


@pytest.fixture
def replicated_store(
    settings, use_mode, replication: Replication
) -> Callable[..., ReplicatedStore]:
    """``replicated_store(SYNC=True, …)``: switch the shop to the run's topology, with
    ``SESSION_REPLICATION`` changed as given, and return the engine: the stores it makes
    from then on use those settings (and their own clients, made once for each value)."""

    def engine(**changes: Any) -> ReplicatedStore:
        use_mode("replicated")
        settings.SESSION_REPLICATION = {**settings.SESSION_REPLICATION, **changes}
        return replicated.SessionStore

    return engine


def saved_replicated(store: ReplicatedStore, replication: Replication) -> replicated.SessionStore:
    """A session saved, and copied to every replica (asked to, and waited for)."""
    session = store()
    session.update({"cart": CART, "_auth_user_id": "4"})
    session.save()
    with replication.primary.client() as primary:
        assert primary.wait(len(replication.replicas), 5000) == len(replication.replicas)
    return session


def test_a_save_lands_on_the_primary_and_is_read_from_the_replica(
    replicated_store, replication: Replication
) -> None:
    store = replicated_store()
    session = saved_replicated(store, replication)
    key = session.cache_key
    with replication.primary.client() as primary:
        age = session.get_expiry_age()
        assert age - 5 <= primary.ttl(key) <= age  # the session's age, as its TTL
    hits = replication.replicas[0].info("stats")["keyspace_hits"]
    with replication.paused(replication.primary):  # the primary answers nothing now
        assert store(session.session_key).load() == {"cart": CART, "_auth_user_id": "4"}
    assert replication.replicas[0].info("stats")["keyspace_hits"] == hits + 1


@pytest.mark.timeout(20)
@pytest.mark.parametrize("fault", ["down", "paused"])
def test_a_replica_that_cannot_be_reached_makes_reads_fall_back_to_the_primary(
    replicated_store, replication: Replication, call: Call, fault: str
) -> None:
    replica = replication.replicas[0]
    if fault == "down":  # nothing listens there: refused at once
        store = replicated_store(REPLICA_URL=f"redis://127.0.0.1:{free_port()}/0")
        outage = nullcontext()
    else:  # accepts, answers nothing: given up after SOCKET_TIMEOUT
        store = replicated_store(SOCKET_TIMEOUT=0.2)
        outage = replication.paused(replica)
    session = saved_replicated(store, replication)
    with outage:
        assert call(store(session.session_key), "load") == {"cart": CART, "_auth_user_id": "4"}


@pytest.mark.timeout(20)
def test_a_sync_save_no_replica_acknowledges_in_time_is_refused_and_an_async_one_is_not(
    replicated_store, replication: Replication, call: Call
) -> None:
    with replication.paused(*replication.replicas):
        sync = replicated_store(SYNC=True, WAIT_MS=200)
        with pytest.raises(ReplicaNotAcknowledged, match="no replica confirmed it within 200 ms"):
            call(sync(), "save")
        session = replicated_store()()  # async: the primary's word is enough
        call(session, "__setitem__", "cart", CART)
        call(session, "save")
    confirmed = replicated_store(SYNC=True, WAIT_MS=200)(session.session_key)
    call(confirmed, "__setitem__", "paid", True)
    call(confirmed, "save")  # the replicas are back: acknowledged
    assert ReplicaNotAcknowledged in UNREACHABLE  # the shop answers 503 and Retry-After


# redis-py's default retries would take over 10 s to give up on three closed ports.
@pytest.mark.timeout(10)
def test_sentinels_that_cannot_be_reached_fail_a_save_at_once_and_reads_go_on(
    replicated_store, replication: Replication, call: Call
) -> None:
    session = saved_replicated(replicated_store(), replication)
    store = replicated_store(SENTINELS=[("127.0.0.1", free_port()) for _ in range(3)])
    stranded = store(session.session_key)
    assert call(stranded, "load") == {"cart": CART, "_auth_user_id": "4"}  # from the replica
    call(stranded, "__setitem__", "cart", {})
    with pytest.raises(MasterNotFoundError):  # a ConnectionError: one of UNREACHABLE
        call(stranded, "save")
    assert isinstance(MasterNotFoundError(), UNREACHABLE)


@pytest.mark.timeout(90)
def test_after_the_primary_dies_sentinel_promotes_a_replica_and_saves_succeed_again(
    settings, tmp_path
) -> None:
    with valkey_replication(tmp_path) as own:  # a topology of its own: this one is broken
        apply_mode(settings, "replicated", "", replication=own.env())
        store = replicated.SessionStore
        before = saved_replicated(store, own)
        own.primary.process.kill()
        own.primary.process.wait()

        def saved_again() -> bool:
            session = store(before.session_key)
            session["after"] = "failover"
            try:
                session.save()
            except UNREACHABLE:
                return False  # no primary yet: the 503 a client would see
            return True

        assert wait_until(saved_again, 60, interval=0.1)
        assert own.current_primary() in own.replicas
        assert store(before.session_key).load() == {
            "cart": CART,
            "_auth_user_id": "4",
            "after": "failover",
        }
