"""memcached mode through nginx and real processes: one node per instance, sessions sharded.

A session written through one instance is read through the others (every
instance hashes a key to the same node); killing ``memcached2`` logs out
exactly the users whose ``X-Session-Node`` was 2, and nobody else; started
again, the node is empty.
"""

from __future__ import annotations

import pytest
from pymemcache.client.base import Client

from sessions_lab.cluster.cluster import Cluster
from tests.cluster.lab import Shopper, read_through, through, written_through

pytestmark = pytest.mark.cluster

MODE = "memcached"


def node_of(shopper: Shopper) -> str:
    return shopper.call("GET", "/api/cart/").headers["X-Session-Node"]


def items_on(port: int) -> int:
    client = Client(("127.0.0.1", port), connect_timeout=2, timeout=2)
    try:
        return int(client.stats()[b"curr_items"])
    finally:
        client.close()


@pytest.mark.timeout(240)
def test_killing_memcached2_logs_out_exactly_the_users_hashed_to_it(make_lab) -> None:
    lab = make_lab("--mode", MODE, "--instances", "3")
    nodes = [p for p in lab.state()["processes"] if p["role"] == "memcached"]
    assert [p["name"] for p in nodes] == ["memcached1", "memcached2", "memcached3"]
    assert all(p["healthy"] and p["status"] == "running" for p in nodes)
    status = lab.cli("status").stdout
    assert all(f"memcached{n}" in status for n in (1, 2, 3))

    # Written through app1, read through app2 and app3: the same node, the same session.
    writer = written_through(lab, MODE, "app1", "user1", {1: 2})
    home = node_of(writer)
    for reader in read_through(lab, MODE, writer, ("app2", "app3"), "user1", {1: 2}):
        assert node_of(reader) == home  # every instance hashes the key to that node

    # Shoppers through nginx until some sessions are on memcached2 and some are not.
    shoppers: dict[str, tuple[Shopper, str]] = {}
    for number in range(2, 31):
        shopper = Shopper(lab, MODE)
        shopper.login(f"user{number}")
        assert shopper.put_item(2, number % 5 + 1).status_code == 200
        shoppers[f"user{number}"] = (shopper, node_of(shopper))
        on_2 = sum(1 for _, node in shoppers.values() if node == "2")
        if number >= 9 and 2 <= on_2 <= len(shoppers) - 2:
            break
    on_node2 = {user for user, (_, node) in shoppers.items() if node == "2"}
    assert on_node2 and on_node2 != set(shoppers)

    cookies = {user: shopper.http.cookies["sessionid"] for user, (shopper, _) in shoppers.items()}
    lab.cli("kill", "memcached2")
    assert lab.process("memcached2")["exit"]["cause"] == "killed by lab: SIGKILL"

    logged_out = set()
    for user, (shopper, _) in shoppers.items():
        answer = shopper.call("GET", "/api/whoami/")
        assert answer.status_code == 200, answer.text  # a lost node is a lost session, no 5xx
        if not answer.json()["authenticated"]:
            logged_out.add(user)
        else:
            assert answer.json()["username"] == user
            assert shopper.cart() == {2: int(user.removeprefix("user")) % 5 + 1}
    assert logged_out == on_node2

    lab.cli("start", "memcached2")
    assert lab.process("memcached2")["healthy"]
    assert items_on(lab.process("memcached2")["port"]) == 0  # no persistence: back empty
    # Their sessions are gone for good, whichever instance asks: the node came back empty.
    for user in on_node2:
        thief = Shopper(lab, MODE)
        thief.http.cookies.set("sessionid", cookies[user])
        assert thief.whoami()["authenticated"] is False


@pytest.mark.timeout(180)
def test_a_scale_out_gets_no_node_and_hashes_as_the_others_do(make_lab) -> None:
    lab = make_lab("--mode", MODE, "--instances", "2")
    writer = written_through(lab, MODE, "app1", "user1", {3: 1})
    assert "app3 added" in Cluster(lab.run_dir).add("app3")  # as scale-out does it
    names = [p["name"] for p in lab.state()["processes"] if p["role"] == "memcached"]
    assert names == ["memcached1", "memcached2"]
    reader = through(lab, MODE, "app3", cookies_of=writer)
    assert reader.call("GET", "/api/cart/").headers["X-Session-Node"] == node_of(writer)
    assert reader.cart() == {3: 1}
