"""store-failover in replicated mode, measured for real: the primary dies, Sentinel promotes a
replica, writes fail for a while and then go on; with sync replication no acknowledged write is
lost. The report says how long writes failed and how many reads were stale."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.cluster

STORE_FAILOVER = (
    "--modes", "replicated", "--scenario", "store-failover", "--users", "10", "--duration", "25",
)  # fmt: skip


@pytest.mark.timeout(300)
@pytest.mark.parametrize("replication", ["async", "sync"])
def test_writes_fail_until_a_replica_is_promoted_then_go_on(experiment, replication) -> None:
    # async is the default: written as the workshop guide writes it, so both read one run.
    chosen = ("--replication", replication) if replication != "async" else ()
    done, summary, out = experiment(*STORE_FAILOVER, *chosen)
    assert done.returncode == 0, done.stdout + done.stderr
    assert summary["replication"] == replication
    result = summary["modes"]["replicated"]
    assert result["verdict"] == "as expected", (result["verdict_reason"], result)
    assert [(e["action"], e["target"]) for e in result["events"]] == [
        ("kill", "redis-primary"),
        ("start", "redis-primary"),
    ]
    # Writes failed, for about as long as the Sentinels took (down after 1 s, then a vote),
    # and only writes: every read came from an instance's own replica.
    assert 0 < result["write_unavailable_s"] < 15
    assert result["failed_writes"] > 0 and result["failed_reads"] == 0
    assert result["failures_unexplained"] == 0
    assert result["orders_lost"] == result["orders_doubled"] == 0
    if replication == "sync":
        assert result["users_lost_session"] == 0
    assert isinstance(result["stale_reads"], int)
    report = (out / "report.md").read_text()
    assert f"Replication {replication} (" in report
    assert "session writes failed for " in report
    assert f"replication {replication}" in (out / "report.html").read_text()


@pytest.mark.timeout(120)
def test_store_failover_does_not_apply_without_a_replicated_primary(experiment) -> None:
    done, summary, _ = experiment(
        "--modes", "redis", "--scenario", "store-failover", "--users", "2", "--duration", "5"
    )
    assert done.returncode == 0, done.stderr
    redis = summary["modes"]["redis"]
    assert redis["verdict"] == "not applicable"
    assert redis["expected"] == "redis has no replicated primary: nothing for Sentinel to fail over"
    assert redis["write_unavailable_s"] == 0.0 and redis["stale_reads"] == 0
