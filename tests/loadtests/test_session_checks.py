"""The verdicts a shopper gives each answer, without a server (and without importing Locust)."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest

from loadtests.session_checks import (
    Answer,
    Failure,
    SessionCheck,
    Shows,
    access_token_expired,
)

CART = {3: 2}
CART_BODY = json.dumps({"items": [{"product": 3, "quantity": 2}], "total": "25.00"})


def shopper() -> SessionCheck:
    return SessionCheck(
        logged_in=True, username="user1", cart=dict(CART), prices={3: Decimal("12.50")}
    )


@pytest.mark.parametrize(
    ("answer", "failure"),
    [
        (Answer(0), Failure.CONNECTION),
        (Answer(502, "<html>Bad Gateway</html>"), Failure.HTTP_5XX),
        (Answer(500), Failure.HTTP_5XX),
        (Answer(403, '{"detail": "CSRF Failed: CSRF token missing."}'), Failure.CSRF),
        (Answer(401, '{"detail": "Authentication credentials were not provided."}'), Failure.LOGGED_OUT),
        (Answer(302, location="/accounts/login/?next=/orders/"), Failure.LOGGED_OUT),
        (Answer(400, "The request's session was deleted before the request completed."), Failure.LOGGED_OUT),
        (Answer(302, location="/cart/"), Failure.UNEXPECTED),
        (Answer(404, '{"detail": "Unknown product 99."}'), Failure.UNEXPECTED),
        (Answer(200, "{}"), None),
    ],
)  # fmt: skip
def test_a_logged_in_shopper_classifies_each_answer(
    answer: Answer, failure: Failure | None
) -> None:
    assert shopper().judge(answer) == failure


def test_a_5xx_is_never_blamed_on_the_session() -> None:
    assert shopper().judge(Answer(503, ""), shows=Shows.CART) is Failure.HTTP_5XX


def test_an_anonymous_visitor_whose_session_vanished_mid_write_lost_its_cart() -> None:
    deleted = Answer(400, "The request's session was deleted before the request completed.")
    assert SessionCheck(cart=dict(CART)).judge(deleted) is Failure.CART_MISMATCH


def test_a_cart_body_must_hold_exactly_what_the_shopper_set() -> None:
    check = shopper()
    assert check.judge(Answer(200, CART_BODY), shows=Shows.CART) is None
    emptied = json.dumps({"items": [], "total": "0.00"})
    assert check.judge(Answer(200, emptied), shows=Shows.CART) is Failure.CART_MISMATCH


def test_who_am_i_must_still_know_the_shopper() -> None:
    check = shopper()
    known = json.dumps({"authenticated": True, "username": "user1"})
    forgotten = json.dumps({"authenticated": False, "username": ""})
    assert check.judge(Answer(200, known), shows=Shows.IDENTITY) is None
    assert check.judge(Answer(200, forgotten), shows=Shows.IDENTITY) is Failure.LOGGED_OUT


def test_a_checkout_must_charge_the_cart_the_shopper_filled() -> None:
    check = shopper()
    ok = (201,)
    assert (
        check.judge(Answer(201, '{"order": 1, "total": "25.00"}'), ok=ok, shows=Shows.ORDER) is None
    )
    assert (
        check.judge(Answer(201, '{"order": 1, "total": "12.50"}'), ok=ok, shows=Shows.ORDER)
        is Failure.CART_MISMATCH
    )
    empty = Answer(400, '{"detail": "Your cart is empty."}')
    assert check.judge(empty, ok=ok, shows=Shows.ORDER) is Failure.CART_MISMATCH


def test_a_refused_login_of_someone_not_logged_in_is_no_session_loss() -> None:
    refused = Answer(401, '{"detail": "Invalid username or password."}')
    assert SessionCheck(logged_in=False).judge(refused) is Failure.UNEXPECTED


def _token(exp: float) -> str:
    claims = base64.urlsafe_b64encode(json.dumps({"exp": exp}).encode()).decode().rstrip("=")
    return f"header.{claims}.signature"


def test_an_access_token_expires_at_its_exp_claim() -> None:
    assert access_token_expired(_token(1000), now=999) is False
    assert access_token_expired(_token(1000), now=1000) is True
    assert access_token_expired("not-a-jwt") is True
