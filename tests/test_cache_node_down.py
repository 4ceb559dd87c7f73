"""``cache-node-down`` from recorded files: its timeline, its predictions, its summary and report.

No servers: the users files are written here the way the shoppers write them
(``nodes``, ``last_node``, ``loss_nodes`` from ``X-Session-Node``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sessions_lab.experiments.report import html_report, markdown
from sessions_lab.experiments.results import ModeRun, not_applicable, summarise_mode
from sessions_lab.experiments.scenarios import get_scenario, verdict
from sessions_lab.modes import MODE_NAMES, StoreServer, get_mode
from tests.test_experiment_results import second, write_run

SCENARIO = get_scenario("cache-node-down")
KILL_NODE2 = [
    {"t": 4.0, "action": "kill", "target": "memcached2", "signal": "KILL"},
    {"t": 7.0, "action": "start", "target": "memcached2"},
]


def shopper(name: str, instance: str, node: str, *losses: str) -> dict[str, Any]:
    """A user whose session was on ``node``; ``losses``: the node before each of its losses."""
    return {
        "user": name,
        "kind": "session",
        "first_instance": instance,
        "lost": bool(losses),
        "nodes": {node: 5},
        "last_node": node,
        "loss_nodes": list(losses),
    }


def summarised(tmp_path: Path, users: list[dict[str, Any]]) -> dict[str, Any]:
    write_run(tmp_path / "memcached", users, [second(t) for t in range(10)])
    run = ModeRun(tmp_path / "memcached", KILL_NODE2, pinned=False, started_at=0)
    return summarise_mode(
        run,
        SCENARIO.expectation("memcached").text,
        lambda r: verdict(SCENARIO, "memcached", r, "sqlite", "none"),
    )


def test_it_kills_memcached2_at_40_percent_and_starts_it_empty_at_70() -> None:
    events = SCENARIO.timeline(3)
    assert [(e.at_seconds(40), e.action, e.target, e.signal) for e in events] == [
        (16.0, "kill", "memcached2", "KILL"),
        (28.0, "start", "memcached2", None),
    ]


def test_it_applies_only_where_the_store_is_memcached_nodes_and_says_why_not() -> None:
    for mode in MODE_NAMES:
        sharded = get_mode(mode).store_server is StoreServer.MEMCACHED
        assert (SCENARIO.expectation(mode, "postgres") is not None) is sharded
        if not sharded:
            assert "no cache node to kill" in SCENARIO.why_not_applicable(mode)


def test_store_restart_points_memcached_to_cache_node_down() -> None:
    store_restart = get_scenario("store-restart")
    assert store_restart.expectation("memcached", "postgres", "aof") is None
    reason = store_restart.why_not_applicable("memcached")
    assert reason.startswith("memcached has no single store to restart")
    assert "cache-node-down" in reason
    assert store_restart.why_not_applicable("cookie") == (
        "cookie keeps no session in a separate store"
    )


def test_kill_one_predicts_nobody_loses_a_session_with_memcached() -> None:
    assert (
        get_scenario("kill-one").expectation("memcached").text.startswith("nobody loses a session")
    )


def test_only_the_users_on_the_killed_node_losing_theirs_is_as_expected(tmp_path: Path) -> None:
    result = summarised(
        tmp_path,
        [
            shopper("user1", "app1", "1"),
            shopper("user2", "app1", "2", "2"),
            # Logged in again while memcached2 was down; its new key hashed to memcached2
            # too, so it lost that session as well when the node came back empty.
            shopper("user3", "app2", "2", "2", "2"),
            shopper("user4", "app3", "3"),
            shopper("user5", "app3", "2"),  # made no request that showed the loss
        ],
    )
    assert result["users_by_node"] == {"memcached1": 1, "memcached2": 3, "memcached3": 1}
    assert result["users_by_instance"] == {"app1": 2, "app2": 1, "app3": 2}
    assert result["faulted_node"] == "memcached2"
    assert result["users_on_faulted_node"] == 3
    assert result["users_lost_on_faulted_node"] == 2
    assert result["users_lost_session"] == 2
    assert result["verdict"] == "as expected", result["verdict_reason"]
    assert result["faulted_instance"] is None


def test_a_loss_on_another_node_is_unexpected(tmp_path: Path) -> None:
    result = summarised(
        tmp_path, [shopper("user1", "app1", "2", "2"), shopper("user2", "app2", "1", "1")]
    )
    assert result["users_lost_on_faulted_node"] == 1
    assert result["verdict"] == "unexpected"


def test_nobody_losing_a_session_is_unexpected_too(tmp_path: Path) -> None:
    result = summarised(tmp_path, [shopper("user1", "app1", "2"), shopper("user2", "app2", "1")])
    assert result["verdict"] == "unexpected"


def test_the_node_fields_are_null_where_no_node_was_faulted(tmp_path: Path) -> None:
    write_run(tmp_path / "memcached", [shopper("user1", "app1", "3")], [second(0)])
    kill_app2 = [{"t": 4.0, "action": "kill", "target": "app2", "signal": "KILL"}]
    run = ModeRun(tmp_path / "memcached", kill_app2, pinned=False, started_at=0)
    result = summarise_mode(run, "x", lambda r: "as expected")
    assert result["users_by_node"] == {"memcached3": 1}
    assert (result["faulted_node"], result["users_on_faulted_node"]) == (None, None)
    assert result["users_lost_on_faulted_node"] is None


def test_not_applicable_has_every_field_of_a_summarised_mode(tmp_path: Path) -> None:
    assert set(not_applicable()) == set(summarised(tmp_path, [shopper("u", "app1", "1")]))


def test_the_report_shows_users_by_cache_node_beside_users_by_instance(tmp_path: Path) -> None:
    result = summarised(
        tmp_path, [shopper("user1", "app1", "1"), shopper("user2", "app3", "2", "2")]
    )
    summary = {
        "scenario": "cache-node-down", "instances": 3, "users": 2, "duration_s": 10,
        "affinity": "cookie", "db": "sqlite", "redis_persistence": "none",
        "modes": {"memcached": result, "redis": not_applicable("redis keeps no session …")},
    }  # fmt: skip
    text = markdown(summary)
    assert "| memcached | 500 | 0 | 1 of 2 | 1 |" in text
    assert (
        "Users by cache node: memcached1 1, memcached2 1 (faulted); by instance: app1 1, app3 1."
        in text
    )
    page = html_report(summary, tmp_path)
    assert "Users by the cache node their session was on before the fault" in page
    assert 'aria-label="users per cache node, hatched: lost their session"' in page
    assert "memcached2</text>" in page
