"""The shop's session engines change Django's in one place each: they must read what Django's read.

``db`` reads its row with plain SQL on the driver's cursor; ``cookie``
checks each signed cookie once per process.
"""

import pytest
from django.contrib.sessions.backends.db import SessionStore as DjangoSessionStore
from django.contrib.sessions.backends.signed_cookies import SessionStore as DjangoCookieStore
from django.core import signing
from django.db import DatabaseError, connection, transaction
from django.db.transaction import TransactionManagementError

from shop import db, verified
from shop.sessions import cookie
from shop.sessions.db import SessionStore

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
    value = cookie_session(cart=CART)
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
