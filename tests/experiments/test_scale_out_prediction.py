"""scale-out's prediction for sticky: a cookie pins every user where it logged in, so nobody
moves and nobody loses; ip hashing moves some. Modes with a shared store lose nobody."""

from __future__ import annotations

from sessions_lab.experiments.scenarios import get_scenario

ADDED = [{"t": 10.0, "action": "add", "target": "app4"}]


def result(users_on_app4: int, lost: int = 0) -> dict:
    by_instance = {
        "app1": 3,
        "app2": 3,
        "app3": 2,
        **({"app4": users_on_app4} if users_on_app4 else {}),
    }
    return {"events": ADDED, "users_by_instance": by_instance, "users_lost_session": lost}


def test_cookie_affinity_moves_nobody_so_nobody_loses() -> None:
    expectation = get_scenario("scale-out").expectation("sticky", affinity="cookie")
    assert "nobody moves, so nobody loses a session" in expectation.text
    assert "the new instance gets only the logins made after it comes" in expectation.text
    assert expectation.holds(result(users_on_app4=0))
    assert not expectation.holds(result(users_on_app4=0, lost=1))


def test_ip_affinity_moves_some_users_and_predicts_no_count() -> None:
    expectation = get_scenario("scale-out").expectation("sticky", affinity="ip")
    assert "some users move to the new instance" in expectation.text
    assert expectation.holds(result(users_on_app4=2, lost=2))


def test_a_shared_store_loses_nobody_whatever_the_new_instance_gets() -> None:
    expectation = get_scenario("scale-out").expectation("redis")
    assert expectation.holds(result(users_on_app4=2))
    assert not expectation.holds(result(users_on_app4=0, lost=1))
