"""Done-when 2 of the Kubernetes issue: kill-one with Locust as a master and 2 workers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

KILL_ONE = ("--modes", "redis", "--scenario", "kill-one", "--users", "12", "--duration", "15")


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def stats_requests(folder: Path) -> int:
    with (folder / "locust_stats.csv").open() as rows:
        return next(
            int(r["Request Count"]) for r in csv.DictReader(rows) if r["Name"] == "Aggregated"
        )


@pytest.mark.timeout(420)
def test_two_load_workers_give_the_verdict_of_one_process(experiment) -> None:
    one_done, one, _ = experiment(*KILL_ONE)
    done, summary, out = experiment(*KILL_ONE, "--load-workers", "2")
    assert one_done.returncode == 0, one_done.stdout + one_done.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    assert (one["load_workers"], summary["load_workers"]) == (1, 2)
    assert summary["schema_version"] == one["schema_version"] == 6
    result = summary["modes"]["redis"]
    assert result["verdict"] == one["modes"]["redis"]["verdict"] == "as expected", result

    folder = out / "redis"
    users = lines(folder / "users.jsonl")
    # Every user once, named apart by the two workers, each attributed to its login's instance.
    assert len(users) == result["users_total"] == 12
    assert len({user["user"] for user in users}) == len({user["number"] for user in users}) == 12
    assert {user["first_instance"] for user in users} <= {"app1", "app2", "app3"}
    assert sum(result["users_by_instance"].values()) == 12
    # The merged timeline counts every request Locust's master counted, once.
    assert sum(second["requests"] for second in lines(folder / "timeline.jsonl")) == (
        stats_requests(folder)
    )
    assert [second["t"] for second in lines(folder / "timeline.jsonl")] == list(
        range(len(lines(folder / "timeline.jsonl")))
    )
    assert (folder / "locust.worker1.log").is_file() and (folder / "locust.worker2.log").is_file()
    assert not list(folder.glob("*.worker*.jsonl"))  # merged, then removed
