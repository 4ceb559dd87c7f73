"""The ``db`` mode's engine reads its row with plain SQL: it must find what Django's engine finds."""

import pytest
from django.contrib.sessions.backends.db import SessionStore as DjangoSessionStore

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
