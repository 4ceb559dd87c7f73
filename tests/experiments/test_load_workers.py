"""Done-when 2 of the Kubernetes issue: kill-one with Locust as a master and 2 workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

KILL_ONE = ("--modes", "redis", "--scenario", "kill-one", "--users", "12", "--duration", "15")


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def timeline_requests(folder: Path) -> int:
    return sum(second["requests"] for second in lines(folder / "timeline.jsonl"))


@pytest.mark.timeout(420)
def test_two_load_workers_give_the_verdict_of_one_process(experiment) -> None:
    one_done, one, one_out = experiment(*KILL_ONE)
    done, summary, out = experiment(*KILL_ONE, "--load-workers", "2")
    assert one_done.returncode == 0, one_done.stdout + one_done.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    assert (one["load_workers"], summary["load_workers"]) == (1, 2)
    assert summary["schema_version"] == one["schema_version"] == 6
    result = summary["modes"]["redis"]
    assert result["verdict"] == one["modes"]["redis"]["verdict"] == "as expected", result

    folder = out / "redis"
    # One process or a master: the summary counts every request the timeline
    # counted (Locust's totals when it quit, its last second included), once.
    assert one["modes"]["redis"]["requests"] == timeline_requests(one_out / "redis") > 0
    assert result["requests"] == timeline_requests(folder) > 0
    users = lines(folder / "users.jsonl")
    # Every user once, named apart by the two workers, each attributed to its login's instance.
    assert len(users) == result["users_total"] == 12
    assert len({user["user"] for user in users}) == len({user["number"] for user in users}) == 12
    assert {user["first_instance"] for user in users} <= {"app1", "app2", "app3"}
    assert sum(result["users_by_instance"].values()) == 12
    assert [second["t"] for second in lines(folder / "timeline.jsonl")] == list(
        range(len(lines(folder / "timeline.jsonl")))
    )
    assert (folder / "locust.worker1.log").is_file() and (folder / "locust.worker2.log").is_file()
    assert not list(folder.glob("*.worker*.jsonl"))  # merged, then removed
