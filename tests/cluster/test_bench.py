"""`sessions-lab bench` end to end, short: every mode's three pages measured with wrk."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sessions_lab.cluster.network import free_port
from sessions_lab.modes import MODE_NAMES
from sessions_lab.paths import PROJECT_ROOT
from tests.cluster.lab import Lab

pytestmark = pytest.mark.cluster

# The workshop guide's `bench --modes all --duration 15`, shortened.
SHORT_BENCH = ("--modes", "all", "--duration", "5", "--connections", "16")


@pytest.mark.timeout(600)
def test_bench_measures_three_pages_per_mode_and_their_ratios(tmp_path) -> None:
    run_dir, port, out = tmp_path / "lab", free_port(), tmp_path / "bench"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "sessions_lab.cli", "bench", *SHORT_BENCH, "--port", str(port),
             "--out", str(out), "--run-dir", str(run_dir)],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=500, check=False,
        )  # fmt: skip
    finally:
        Lab(run_dir, port).teardown()
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((out / "bench.json").read_text())
    assert result["generator"].startswith("wrk")
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
        assert 0 < figures["ratios"]["cart_read"] <= 1.5
        assert 0 < figures["ratios"]["cart_write"] <= 1.5
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
        assert kill["orders_stored"] == kill["orders_acknowledged"], (mode, kill)
    report = (out / "bench.md").read_text()
    assert "| sticky |" in report and "orders acked / stored / lost / doubled" in report
