"""replicated mode through nginx and real processes: a Valkey primary, a replica per instance,
three Sentinels.

A session written through one instance is read through the others (each from its own
replica); killing ``redis-primary`` makes writes fail (503) until the Sentinels promote a
replica, after which they go on with nothing lost; started again, the old primary comes back
empty and rejoins as a replica of the new one.
"""

from __future__ import annotations

import pytest
import redis

from sessions_lab.cluster.network import redis_role
from sessions_lab.waiting import wait_until
from tests.cluster.lab import Lab, Shopper, read_through, through, written_through

pytestmark = pytest.mark.cluster

MODE = "replicated"
FAILOVER_DEADLINE_S = 20.0


def servers(lab: Lab, role: str) -> list[dict]:
    return [p for p in lab.state()["processes"] if p["role"] == role]


def keys_on(port: int) -> int:
    return int(redis.Redis("127.0.0.1", port, socket_timeout=2).dbsize())


@pytest.mark.timeout(240)
def test_the_primary_dies_writes_wait_for_a_promoted_replica_and_nothing_is_lost(
    make_lab,
) -> None:
    lab = make_lab("--mode", MODE, "--instances", "3", "--replication", "sync")
    assert [p["name"] for p in servers(lab, "primary")] == ["redis-primary"]
    replicas = servers(lab, "replica")
    assert [p["name"] for p in replicas] == ["app1-replica", "app2-replica", "app3-replica"]
    assert [p["name"] for p in servers(lab, "sentinel")] == ["sentinel1", "sentinel2", "sentinel3"]
    assert all(p["healthy"] for p in lab.state()["processes"])
    assert "primary now: redis-primary" in lab.cli("status").stdout

    # Written through app1 (to the primary, waiting for a replica), read through app2 and
    # app3 from their own replicas, which every one has.
    writer = written_through(lab, MODE, "app1", "user1", {1: 2})
    read_through(lab, MODE, writer, ("app2", "app3"), "user1", {1: 2})
    primary_keys = keys_on(lab.process("redis-primary")["port"])
    assert primary_keys > 0
    assert all(wait_until(lambda p=p: keys_on(p["port"]) == primary_keys, 5) for p in replicas)

    shopper = Shopper(lab, MODE)
    shopper.login("user2")
    assert shopper.put_item(2, 1).status_code == 200
    lab.cli("kill", "redis-primary")
    # Reads go on from the replicas while no primary is known; writes are refused (503).
    assert shopper.cart() == {2: 1}
    statuses: list[int] = []

    def written() -> bool:
        statuses.append(shopper.put_item(3, 1).status_code)
        return statuses[-1] == 200

    assert wait_until(written, FAILOVER_DEADLINE_S), statuses
    assert set(statuses[:-1]) <= {503}
    assert shopper.cart() == {2: 1, 3: 1}  # nothing acknowledged was lost
    status = lab.cli("status").stdout
    promoted = status.split("primary now: ", 1)[1].split()[0]
    assert promoted in {"app1-replica", "app2-replica", "app3-replica"}

    # Started again, the old primary is empty and a primary, until the Sentinels make it a
    # replica of the promoted one (they look at it every 10 s).
    lab.cli("start", "redis-primary")
    old = lab.process("redis-primary")["port"]
    assert wait_until(lambda: redis_role(old) == "slave", 30)
    assert wait_until(lambda: keys_on(old) == keys_on(lab.process(promoted)["port"]), 10)
    assert "primary now: " + promoted in lab.cli("status").stdout


@pytest.mark.timeout(180)
def test_an_instance_whose_replica_died_reads_from_the_primary(make_lab) -> None:
    lab = make_lab("--mode", MODE, "--instances", "2")
    writer = written_through(lab, MODE, "app1", "user1", {4: 3})
    lab.cli("kill", "app2-replica")
    reader = through(lab, MODE, "app2", cookies_of=writer)
    assert reader.cart() == {4: 3}
    assert reader.put_item(5, 1).status_code == 200
    lab.cli("start", "app2-replica")
    assert lab.process("app2-replica")["healthy"]  # linked to the primary again
    writer.http.cookies.update(reader.http.cookies)
    assert writer.cart() == {4: 3, 5: 1}
