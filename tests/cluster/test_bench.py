"""`sessions-lab bench` end to end, short: every mode's three pages measured with wrk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sessions_lab.cluster.network import free_port
from sessions_lab.modes import MODE_NAMES, get_mode
from sessions_lab.paths import PROJECT_ROOT
from tests.cluster.lab import Lab

pytestmark = pytest.mark.cluster

# The workshop guide's `bench --modes all --duration 15`, shortened.
SHORT_BENCH = ("--modes", "all", "--duration", "5", "--connections", "16")


def run_bench(tmp_path: Path, *args: str, timeout: int) -> tuple[dict[str, Any], str]:
    """``sessions-lab bench ARGS`` in a run folder of its own: bench.json, and bench.md."""
    run_dir, port, out = tmp_path / "lab", free_port(), tmp_path / "bench"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "sessions_lab.cli", "bench", *args, "--port", str(port),
             "--out", str(out), "--run-dir", str(run_dir)],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    finally:
        Lab(run_dir, port).teardown()
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((out / "bench.json").read_text()), (out / "bench.md").read_text()


@pytest.mark.timeout(600)
def test_bench_measures_three_pages_per_mode_and_their_ratios(tmp_path) -> None:
    result, report = run_bench(tmp_path, *SHORT_BENCH, timeout=500)
    assert result["generator"].startswith("wrk")
    assert (result["schema_version"], result["db"]) == (4, "sqlite")
    # A replicated mode twice: async, then sync (each save waits for a replica).
    assert list(result["modes"]) == [
        *MODE_NAMES[: MODE_NAMES.index("replicated") + 1],
        "replicated (sync)",
        *MODE_NAMES[MODE_NAMES.index("replicated") + 1 :],
    ]
    assert result["modes"]["replicated"]["replication"] == "async"
    assert result["modes"]["replicated (sync)"]["replication"] == "sync"
    for mode, figures in result["modes"].items():
        for page in ("healthz", "cart_read", "cart_write"):
            assert figures[page]["rps"] > 0, (mode, page)
            assert figures[page]["p99_ms"] >= figures[page]["p50_ms"] > 0, (mode, page)
            assert figures[page]["errors"] == 0, (mode, page, figures[page])
        for page in ("cart_read", "cart_write"):
            assert 0 < figures["ratios"][page] <= 1.5
            # The median round's ratio, within the lowest and highest round's.
            low, high = figures["ratio_spread"][page]
            assert low <= figures["ratios"][page] <= high, (mode, page)
            assert min(figures["per_round"]["ratios"][page]) == low
            assert len(figures["per_round"]["rps"][page]) == figures["rounds"]
        assert figures["session_bytes"] > 0
        assert "error" not in figures["engine"], (mode, figures["engine"])  # app1's environment
        assert figures["kill"]["gets"] > 0 and figures["kill"]["writes"] > 0
        # nginx retries every GET the dead instance left unanswered; one whose
        # answer had begun (a window of microseconds) cannot be retried.
        kill = figures["kill"]
        assert kill["gets_failed"] == kill["gets_cut_off"] <= 2, (mode, kill)  # 2 GET streams
        # nginx re-sends a keyed checkout the dead instance left unanswered, and
        # the client sends one cut off again with its key: every checkout ends in
        # one order, told to the client and stored.
        assert kill["checkouts"] > 0 and kill["orders_acknowledged"] > 0, (mode, kill)
        assert kill["checkouts_unrecovered"] == 0, (mode, kill)
        assert kill["orders_lost"] == kill["orders_doubled"] == 0, (mode, kill)
        # Every order stored was told to the client, but in sticky: a checkout app2
        # stored and never answered is sent again (by nginx, or by the client if its
        # answer was cut off) to an instance that never had the session, which refuses
        # it (401), so its order stands unknown to the client. Clean-clone CI runs,
        # 2026-11-30: 1 in 466 checkouts (cut off), then 1 in 231 (re-sent by nginx).
        unknown = kill["orders_unacknowledged"]
        assert kill["orders_stored"] == kill["orders_acknowledged"] + unknown, (mode, kill)
        keeps = get_mode(mode.split(" ")[0]).keeps_sessions_on_instance_death
        assert unknown <= (0 if keeps else kill["checkouts_refused"]), (mode, kill)
    assert "| sticky |" in report and "orders acked / stored / lost / doubled" in report


@pytest.mark.timeout(300)
def test_bench_on_postgres_measures_a_database_mode_with_synchronous_commit_on_then_off(
    tmp_path,
) -> None:
    result, report = run_bench(
        tmp_path,
        "--modes",
        "jwt",
        "--db",
        "postgres",
        "--duration",
        "2",
        "--connections",
        "8",
        timeout=250,
    )
    assert result["db"] == "postgres"
    assert list(result["modes"]) == ["jwt", "jwt (synchronous_commit off)"]
    on, off = result["modes"].values()
    assert (on["synchronous_commit"], off["synchronous_commit"]) == ("on", "off")
    for figures in (on, off):
        assert figures["cart_write"]["rps"] > 0 and figures["cart_write"]["errors"] == 0
    assert "error" not in on["engine"], on["engine"]  # its own database on the lab's server
    assert "kill" in on and "kill" not in off  # the same lab, its pages measured again
    assert "| jwt (synchronous_commit off) |" in report
