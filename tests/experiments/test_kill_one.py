"""Done-when 1, 4, 5 of the experiment issue: kill-one over every mode, measured for real."""

from __future__ import annotations

import json
import subprocess
import tempfile

import pytest

from sessions_lab.modes import MODE_NAMES, get_mode

pytestmark = pytest.mark.cluster

# 12 users: with fewer, affinity may pin no logged-in shopper to app2, and then
# nobody in sticky mode has anything to lose.
SHORT_KILL_ONE = ("--modes", "all", "--scenario", "kill-one", "--users", "12", "--duration", "15")


@pytest.mark.timeout(420)
def test_kill_one_loses_sessions_only_in_sticky_and_only_on_the_killed_instance(experiment) -> None:
    done, summary, _out = experiment(*SHORT_KILL_ONE)
    assert done.returncode == 0, done.stdout + done.stderr
    modes = summary["modes"]
    assert list(modes) == list(MODE_NAMES)
    sticky = modes["sticky"]
    assert sticky["users_lost_session"] >= 1
    assert sticky["users_lost_on_faulted_instance"] == sticky["users_lost_session"]
    assert sticky["users_pinned_to_faulted_instance"] >= sticky["users_lost_session"]
    for mode in (m for m in MODE_NAMES if get_mode(m).keeps_sessions_on_instance_death):
        assert modes[mode]["users_lost_session"] == 0, (mode, modes[mode])
        assert modes[mode]["users_pinned_to_faulted_instance"] is None
    for mode, result in modes.items():
        assert result["verdict"] == "as expected", (mode, result)
        assert result["requests"] > 0
        assert [e["action"] for e in result["events"]] == ["kill", "start"]
        # The order audit (issue 17): every acknowledged order stored, none twice.
        assert result["order_audit_error"] is None, (mode, result["order_audit_error"])
        assert result["orders_acknowledged"] > 0, mode
        assert (result["orders_lost"], result["orders_doubled"]) == (0, 0), (mode, result)
        assert result["failures_unexplained"] == 0, (mode, result["failed_request_groups"])
    assert "| sticky |" in done.stdout
    assert "report.html" in done.stdout


@pytest.mark.timeout(420)
def test_results_folder_holds_the_contract_files_and_raw_data(experiment) -> None:
    _, summary, out = experiment(*SHORT_KILL_ONE)
    assert summary["schema_version"] == 6
    assert {"scenario", "instances", "users", "duration_s", "affinity", "db", "redis_persistence",
            "seed", "versions", "modes", "cart_store", "encrypt_sessions", "session_idle",
            "session_absolute"} <= set(summary)  # fmt: skip
    assert set(summary["versions"]) >= {"django", "nginx", "redis", "locust"}
    for name in ("summary.json", "report.md", "report.html"):
        assert (out / name).is_file()
    for mode, result in summary["modes"].items():
        # The live lines and the summary read the same clock: the load's.
        fired = [
            json.loads(line)["t"] for line in (out / mode / "events.jsonl").read_text().splitlines()
        ]
        assert fired == pytest.approx([event["t"] for event in result["events"]], abs=0.25), mode
    for mode in summary["modes"]:
        for raw in (
            "locust_stats.csv",
            "locust_totals.json",
            "users.jsonl",
            "timeline.jsonl",
            "events.jsonl",
            "failures.jsonl",
            "orders.json",
            "logs/nginx-access.jsonl",
        ):
            assert (out / mode / raw).is_file(), (mode, raw)


@pytest.mark.timeout(420)
def test_html_report_opens_in_chromium_without_console_errors(experiment) -> None:
    _, _summary, out = experiment(*SHORT_KILL_ONE)
    profile = tempfile.mkdtemp(prefix="chromium-")
    shot = out / "report.png"
    done = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--window-size=1280,2400",
         f"--screenshot={shot}", (out / "report.html").as_uri()],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert shot.is_file() and shot.stat().st_size > 10_000, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    page = (out / "report.html").read_text()
    assert page.count('class="chart"') == len(MODE_NAMES)  # one time chart per mode
    # Users by instance in every mode, and by cache node where the store is memcached nodes.
    nodes = sum(1 for mode in MODE_NAMES if get_mode(mode).uses_memcached)
    assert page.count('class="spread"') == len(MODE_NAMES) + nodes
    assert "kill app2 KILL" in page
    assert "<script" not in page
