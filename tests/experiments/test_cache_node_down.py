"""cache-node-down in memcached mode, measured for real: exactly the users hashed to memcached2
lose their session, whichever instance served them; the report shows them by node."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.cluster

# 24 users over three nodes: some sessions hash to memcached2, most do not. Session keys are
# random: with 12 users (9 shoppers) none hashed to it once in a clean-clone CI run, a
# chance of (2/3)^9, 2.6%; with 18 shoppers it is (2/3)^18, under 0.1%.
CACHE_NODE_DOWN = (
    "--modes", "memcached", "--scenario", "cache-node-down", "--users", "24", "--duration", "30",
)  # fmt: skip


@pytest.mark.timeout(300)
def test_killing_memcached2_loses_exactly_the_sessions_hashed_to_it(experiment) -> None:
    done, summary, out = experiment(*CACHE_NODE_DOWN)
    assert done.returncode == 0, done.stdout + done.stderr
    result = summary["modes"]["memcached"]
    assert result["verdict"] == "as expected", (result["verdict_reason"], result)
    assert [(e["action"], e["target"]) for e in result["events"]] == [
        ("kill", "memcached2"),
        ("start", "memcached2"),
    ]
    assert result["faulted_node"] == "memcached2"
    assert result["users_lost_session"] == result["users_lost_on_faulted_node"] > 0
    assert result["users_on_faulted_node"] >= result["users_lost_on_faulted_node"]
    assert set(result["users_by_node"]) <= {"memcached1", "memcached2", "memcached3"}
    assert len(result["users_by_instance"]) == 3  # served by every instance alike
    assert "Users by cache node: " in (out / "report.md").read_text()
    assert "Users by the cache node" in (out / "report.html").read_text()


@pytest.mark.timeout(120)
def test_cache_node_down_does_not_apply_without_memcached_nodes(experiment) -> None:
    done, summary, _ = experiment(
        "--modes", "redis", "--scenario", "cache-node-down", "--users", "2", "--duration", "5"
    )
    assert done.returncode == 0, done.stderr
    redis = summary["modes"]["redis"]
    assert redis["verdict"] == "not applicable"
    assert (
        redis["expected"]
        == "redis keeps no session on memcached nodes: there is no cache node to kill"
    )
    assert redis["users_by_node"] == {} and redis["faulted_node"] is None
