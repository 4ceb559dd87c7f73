"""Done-when 1 and 2: sticky mode pins each client; the other modes spread it and lose nothing."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.cluster.lab import Lab, Shopper

pytestmark = pytest.mark.cluster

CLIENTS = 30


def pinned_clients(lab: Lab, affinity: str, count: int, first: int = 0) -> list[Shopper]:
    """New clients that have done what their affinity technique needs to pin them.

    They arrive together (each step for all of them before the next step), like
    concurrent users; one after the other, their requests would fall into step
    with round robin and all create their sessions on the same instance.
    """
    clients = [
        Shopper(lab, "sticky", forwarded_for=f"10.{n % 7}.{n}.{n * 3 % 250}")
        for n in range(first, first + count)
    ]
    for client in clients:
        client.whoami()
    if affinity == "learn":
        # nginx learns a client only from the session cookie Django sets, so
        # the client must first store something in its session.
        for client in clients:
            assert client.put_item(1, 1).status_code == 200
    return clients


@pytest.mark.parametrize("affinity", ["cookie", "learn", "route", "ip"])
def test_sticky_pins_each_client_and_spreads_the_clients(module_lab, affinity: str) -> None:
    lab = module_lab("--mode", "sticky", "--affinity", affinity)

    [one] = pinned_clients(lab, affinity, 1)
    served = {one.call("GET", "/api/cart/").headers["X-Served-By"] for _ in range(50)}
    assert len(served) == 1, served

    pinned_to: Counter[str] = Counter()
    for client in pinned_clients(lab, affinity, CLIENTS, first=1):
        first, second = (client.call("GET", "/api/whoami/") for _ in range(2))
        assert first.headers["X-Served-By"] == second.headers["X-Served-By"]
        pinned_to[first.headers["X-Served-By"]] += 1
    assert len(pinned_to) == 3, pinned_to
    assert max(pinned_to.values()) <= 0.6 * CLIENTS, pinned_to


def test_route_can_be_chosen_in_the_url(module_lab) -> None:
    lab = module_lab("--mode", "sticky", "--affinity", "route")
    shopper = Shopper(lab, "sticky")
    for _ in range(5):
        response = shopper.http.get(f"{lab.url}/api/whoami/?route=app3", timeout=10)
        assert response.headers["X-Served-By"] == "app3"
        shopper.http.cookies.clear()


@pytest.mark.parametrize("mode", ["redis", "db", "cached_db", "cookie", "jwt"])
def test_shared_state_modes_spread_a_client_and_keep_its_login_and_cart(
    module_lab, mode: str
) -> None:
    lab = module_lab("--mode", mode)
    shopper = Shopper(lab, mode)
    shopper.login("user1")
    first, second = shopper.products()[:2]
    assert shopper.put_item(first, 2).status_code == 200
    assert shopper.put_item(second, 1).status_code == 200
    for _ in range(8):
        assert shopper.cart() == {first: 2, second: 1}
        assert shopper.whoami()["username"] == "user1"
    assert len(set(shopper.served_by)) >= 2, shopper.served_by
