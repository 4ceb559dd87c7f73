"""Done-when 3 and 4: an instance or Redis dies, and exactly the expected sessions go."""

from __future__ import annotations

import time

import pytest

from tests.cluster.lab import Lab, Shopper

pytestmark = pytest.mark.cluster


def shopper_with_cart(lab: Lab, mode: str, username: str) -> Shopper:
    shopper = Shopper(lab, mode)
    shopper.login(username)
    assert shopper.put_item(1, 2).status_code == 200
    assert shopper.put_item(2, 1).status_code == 200
    return shopper


def test_redis_mode_keeps_a_cart_when_app2_is_killed(make_lab) -> None:
    lab = make_lab("--mode", "redis")
    shopper = shopper_with_cart(lab, "redis", "user1")

    lab.cli("kill", "app2", "--signal", "KILL")
    killed = time.monotonic()
    assert lab.process("app2")["exit"]["cause"] == "killed by lab: SIGKILL"

    answers = [shopper.call("GET", "/api/cart/") for _ in range(9)]
    assert time.monotonic() - killed < 1.0
    assert [answer.status_code for answer in answers] == [200] * 9
    assert shopper.cart() == {1: 2, 2: 1}
    assert shopper.whoami()["username"] == "user1"
    assert "app2" not in {answer.headers["X-Served-By"] for answer in answers}


def test_sticky_users_of_the_killed_instance_lose_login_and_cart(make_lab) -> None:
    lab = make_lab("--mode", "sticky")  # affinity by nginx cookie
    clients = [Shopper(lab, "sticky") for _ in range(6)]
    for client in clients:
        client.whoami()  # pinned from this first response on
    victim = next(c for c in clients if c.served_by[-1] == "app2")
    bystander = next(c for c in clients if c.served_by[-1] != "app2")
    for number, client in enumerate((victim, bystander), start=1):
        client.login(f"user{number}")
        assert client.put_item(1, number).status_code == 200
    assert victim.cart() == {1: 1} and victim.served_by[-1] == "app2"

    lab.cli("kill", "app2")

    assert victim.cart() == {}
    me = victim.whoami()
    assert me["authenticated"] is False and victim.served_by[-1] != "app2"
    assert bystander.cart() == {1: 2}
    assert bystander.whoami()["username"] == "user2"


@pytest.mark.parametrize(
    ("mode", "persistence", "survives"),
    [("redis", "none", False), ("redis", "aof", True), ("cached_db", "none", True)],
)
def test_sessions_across_a_redis_restart(
    make_lab, mode: str, persistence: str, survives: bool
) -> None:
    lab = make_lab("--mode", mode, "--redis-persistence", persistence, "--instances", "2")
    shopper = shopper_with_cart(lab, mode, "user1")

    lab.cli("kill", "redis")
    lab.cli("start", "redis")

    if survives:
        assert shopper.cart() == {1: 2, 2: 1}
        assert shopper.whoami()["username"] == "user1"
    else:
        assert shopper.cart() == {}
        assert shopper.whoami()["authenticated"] is False
