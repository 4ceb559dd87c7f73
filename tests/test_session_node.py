"""``X-Session-Node``: the memcached node a session's key hashes to, told without loading it.

Against real memcached nodes (``tests/memcached_server.py``): the node the
header names is the one holding the session, as pymemcache's own client put
it there; the header is absent in every other mode, and without a session
key; and a client that cannot tell gives no header rather than a 500.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.cache import caches
from pymemcache.client.base import Client

from sessions_lab.modes import get_mode
from shop import session_node
from tests.shoppers import Shopper

pytestmark = pytest.mark.django_db


def holds(server: str, key: str) -> bool:
    """Whether the memcached at ``host:port`` has ``key``, asked directly."""
    host, port = server.rsplit(":", 1)
    client = Client((host, int(port)), connect_timeout=1, timeout=1)
    try:
        return client.get(key) is not None
    finally:
        client.close()


def full_key(session_key: str) -> str:
    return caches[settings.SESSION_CACHE_ALIAS].make_key(
        "django.contrib.sessions.cache" + session_key
    )


def test_the_header_names_the_node_that_holds_the_session(use_mode, demo_user) -> None:
    use_mode("memcached")
    servers = settings.CACHES["sessions"]["LOCATION"]
    seen = set()
    for _ in range(12):  # new sessions until more than one node holds one
        shopper = Shopper("memcached")
        answer = shopper.login()
        assert answer.status_code == 200
        node = int(answer["X-Session-Node"])
        key = full_key(shopper.session_cookie())
        assert [holds(server, key) for server in servers] == [
            number == node for number in range(1, len(servers) + 1)
        ]
        assert shopper.call("get", "/api/cart/")["X-Session-Node"] == str(node)
        seen.add(node)
    assert len(seen) > 1


def test_the_inspector_names_the_node_too(use_mode, demo_user) -> None:
    use_mode("memcached")
    shopper = Shopper("memcached")
    node = shopper.login()["X-Session-Node"]
    assert shopper.whoami()["session"]["node"] == int(node)
    page = shopper.client.get("/").content.decode()
    assert f"memcached node {node}, key" in page


def test_no_header_without_a_session_key(use_mode) -> None:
    use_mode("memcached")
    assert "X-Session-Node" not in Shopper("memcached").call("get", "/api/products/")


def test_no_header_in_a_mode_whose_store_is_not_memcached(session_shopper, demo_user) -> None:
    answer = session_shopper.login()
    assert answer.status_code == 200
    assert ("X-Session-Node" in answer) is get_mode(settings.SESSION_MODE).uses_memcached


def test_a_node_that_cannot_be_told_is_no_header_and_no_error(
    use_mode, demo_user, monkeypatch
) -> None:
    use_mode("memcached")
    shopper = Shopper("memcached")

    def broken(client: object) -> None:
        raise RuntimeError("no hasher today")

    monkeypatch.setattr(session_node, "_home_hasher", broken)
    answer = shopper.login()
    assert answer.status_code == 200
    assert "X-Session-Node" not in answer


def test_a_dead_node_leaves_the_others_keys_where_they_are(use_mode) -> None:
    """The home hasher keeps every node: a key's node does not move while one is dead."""
    use_mode("memcached")
    cache = caches[settings.SESSION_CACHE_ALIAS]
    client = cache._cache
    nodes = list(client.clients)
    before = {k: client.hasher.get_node(k) for k in (f"key{i}" for i in range(60))}
    client.hasher.remove_node(nodes[1])  # as HashClient does with a node it finds dead
    try:
        _, home = session_node._home_hasher(client)
        assert {k: home.get_node(k) for k in before} == before
        assert all(client.hasher.get_node(k) != nodes[1] for k in before)
    finally:
        client.hasher.add_node(nodes[1])


def test_a_remembered_node_is_the_one_rendezvous_hashing_chooses_until_the_nodes_change() -> None:
    from pymemcache.client.rendezvous import RendezvousHash

    from shop.sessions.cache import RememberingRendezvousHash

    nodes = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
    plain, remembering = RendezvousHash(), RememberingRendezvousHash()
    for node in nodes:
        plain.add_node(node)
        remembering.add_node(node)
    keys = [f":1:sessions-lab{n:032d}" for n in range(300)]
    for _ in range(2):  # computed, then remembered
        assert [remembering.get_node(k) for k in keys] == [plain.get_node(k) for k in keys]
    # A node left out (HashClient does so with a failed one): its keys move, at once.
    lost = [k for k in keys if plain.get_node(k) == nodes[1]]
    assert lost
    plain.remove_node(nodes[1])
    remembering.remove_node(nodes[1])
    assert all(remembering.get_node(k) != nodes[1] for k in lost)
    assert [remembering.get_node(k) for k in keys] == [plain.get_node(k) for k in keys]
    plain.add_node(nodes[1])  # and taken back
    remembering.add_node(nodes[1])
    assert [remembering.get_node(k) for k in keys] == [plain.get_node(k) for k in keys]


def test_the_remembered_nodes_are_bounded(monkeypatch) -> None:
    from shop.sessions.cache import RememberingRendezvousHash

    remembering = RememberingRendezvousHash()
    remembering.add_node("127.0.0.1:1")
    monkeypatch.setattr(RememberingRendezvousHash, "MAX_KEYS", 10)
    for n in range(25):
        remembering.get_node(f"key{n}")
    assert len(remembering._nodes_of) <= 10


def test_the_lab_keeps_its_memcached_connections_and_remembers_nodes(use_mode, monkeypatch) -> None:
    from shop.sessions.cache import KeptOpenPyMemcacheCache, RememberingRendezvousHash

    use_mode("memcached")
    cache = caches[settings.SESSION_CACHE_ALIAS]
    assert isinstance(cache, KeptOpenPyMemcacheCache)
    assert isinstance(cache._cache.hasher, RememberingRendezvousHash)
    disconnects: list[object] = []
    monkeypatch.setattr(cache._cache, "disconnect_all", lambda: disconnects.append(1))
    cache.set("kept", b"1")
    cache.close()  # what Django does when a request finishes: Django's backend disconnects
    assert disconnects == []
    assert cache.get("kept") == b"1"
