"""Done-when 2 and 3 of the experiment issue: a store restart, and a careful rolling deploy."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.cluster


@pytest.mark.timeout(300)
def test_redis_restart_loses_every_session_without_persistence_and_none_with_aof(
    experiment,
) -> None:
    args = ("--scenario", "store-restart", "--users", "6", "--duration", "15")
    _, plain, _ = experiment("--modes", "redis,cached_db", *args)
    _, aof, _ = experiment("--modes", "redis", "--redis-persistence", "aof", *args)
    assert plain["modes"]["redis"]["users_lost_session"] >= 3  # of 6: everyone logged in by then
    assert plain["modes"]["redis"]["verdict"] == "as expected"
    assert plain["modes"]["cached_db"]["users_lost_session"] == 0
    assert plain["modes"]["cached_db"]["verdict"] == "as expected"
    assert aof["modes"]["redis"]["users_lost_session"] == 0
    assert aof["modes"]["redis"]["verdict"] == "as expected"
    assert [e["target"] for e in aof["modes"]["redis"]["events"]] == ["redis", "redis"]


@pytest.mark.timeout(300)
def test_store_restart_does_not_apply_where_there_is_no_store(experiment) -> None:
    done, summary, _ = experiment(
        "--modes", "sticky,cookie", "--scenario", "store-restart", "--users", "2", "--duration", "5"
    )
    assert done.returncode == 0, done.stderr
    assert {m: r["verdict"] for m, r in summary["modes"].items()} == {
        "sticky": "not applicable",
        "cookie": "not applicable",
    }


@pytest.mark.timeout(300)
def test_a_drained_rolling_restart_in_redis_mode_fails_no_request(experiment) -> None:
    done, summary, _ = experiment(
        "--modes", "redis", "--scenario", "rolling-restart", "--users", "10", "--duration", "24"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    redis = summary["modes"]["redis"]
    assert [e["action"] for e in redis["events"]] == ["drain", "kill", "start"] * 3
    assert redis["failed_requests"] == 0
    assert redis["failures"] == dict.fromkeys(redis["failures"], 0)
    assert redis["users_lost_session"] == 0
    assert redis["verdict"] == "as expected"


@pytest.mark.timeout(300)
def test_scale_out_adds_an_instance_mid_run_that_takes_traffic(experiment) -> None:
    import json

    done, summary, out = experiment(
        "--modes", "redis", "--scenario", "scale-out", "--users", "6", "--duration", "14"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    fired = [json.loads(line) for line in (out / "redis" / "events.jsonl").read_text().splitlines()]
    assert [(e["action"], e["target"], e["ok"]) for e in fired] == [("add", "app4", True)]
    access_log = (out / "redis" / "logs" / "nginx-access.jsonl").read_text()
    assert '"served_by":"app4"' in access_log
    assert summary["modes"]["redis"]["verdict"] == "as expected"
