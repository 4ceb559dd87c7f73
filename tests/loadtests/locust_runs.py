"""Run the lab's locustfile headless in a process of its own and read what it left behind.

Locust is never imported here: importing it patches the whole process with
gevent, and pytest's process must stay a plain one.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.loadtests.shop_server import BIN, PROJECT_ROOT

LOCUSTFILE = PROJECT_ROOT / "loadtests" / "locustfile.py"
SESSION_LOSSES = ("logged_out", "cart_mismatch")


@dataclass
class LocustRun:
    returncode: int
    out: Path

    @property
    def log(self) -> str:
        return (self.out / "locust.log").read_text()

    @property
    def users(self) -> list[dict[str, Any]]:
        lines = (self.out / "users.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    @property
    def timeline(self) -> list[dict[str, Any]]:
        lines = (self.out / "timeline.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    @property
    def totals(self) -> dict[str, Any]:
        """Locust's own totals when it quit (``--totals-out``)."""
        return json.loads((self.out / "locust_totals.json").read_text())

    def requests(self) -> int:
        return sum(second["requests"] for second in self.timeline)

    def failures(self) -> Counter[str]:
        """Failures by class over the whole run, ``unexpected`` included."""
        total: Counter[str] = Counter()
        for second in self.timeline:
            total.update(second["failures_by_class"])
            total["unexpected"] += second["unexpected"]
        return total

    def session_losses(self) -> int:
        failures = self.failures()
        return sum(failures[name] for name in SESSION_LOSSES)

    def stats(self) -> dict[tuple[str, str], dict[str, str]]:
        """Locust's own statistics, by (method, name)."""
        with (self.out / "locust_stats.csv").open() as rows:
            return {(row["Type"], row["Name"]): row for row in csv.DictReader(rows)}

    def failure_rows(self) -> list[dict[str, str]]:
        with (self.out / "locust_failures.csv").open() as rows:
            return list(csv.DictReader(rows))


def start_locust(
    host: str, out: Path, *, users: int = 4, duration: str = "5s", extra: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    """Locust headless against ``host``, writing everything into ``out``; run from ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    argv = [
        str(BIN / "locust"), "-f", str(LOCUSTFILE),
        "--host", host,
        "--headless",
        "--users", str(users),
        "--spawn-rate", str(max(users, 1)),
        "--run-time", duration,
        "--think-time", "0.3",
        "--only-summary",
        "--csv", str(out / "locust"),
        "--users-out", str(out / "users.jsonl"),
        "--timeline-out", str(out / "timeline.jsonl"),
        "--totals-out", str(out / "locust_totals.json"),
        *extra,
    ]  # fmt: skip
    with (out / "locust.log").open("wb") as log:
        return subprocess.Popen(
            argv,
            # Not the project folder: the locustfile must find its own modules.
            cwd=out,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def finish_locust(process: subprocess.Popen[bytes], out: Path, timeout: float = 60) -> LocustRun:
    """Wait for a Locust run to end by its ``--run-time``; kill it (by its group) if it hangs."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        raise
    return LocustRun(returncode=process.returncode, out=out)


def run_locust(host: str, out: Path, **options: Any) -> LocustRun:
    return finish_locust(start_locust(host, out, **options), out)


def stop_locust(process: subprocess.Popen[bytes], out: Path) -> LocustRun:
    """End a run early, as Ctrl-C or the lab would: SIGTERM, and Locust still writes its files."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
    return finish_locust(process, out, timeout=30)


def run_locust_until(
    host: str,
    out: Path,
    condition: Callable[[], bool],
    *,
    deadline_s: float = 45,
    extra: tuple[str, ...] = (),
) -> LocustRun:
    """Run until ``condition`` holds, however slow a busy machine makes the logins; then stop.

    ``--run-time`` stays as an outer bound, so a run can never go on forever.
    """
    process = start_locust(host, out, duration=f"{deadline_s + 15:.0f}s", extra=extra)
    try:
        wait_until(condition, process, deadline_s)
    finally:
        run = stop_locust(process, out)
    return run


def wait_until(
    condition: Callable[[], bool], process: subprocess.Popen[bytes], deadline_s: float
) -> None:
    """Poll ``condition`` while Locust runs; fail if it ends or the deadline passes first."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the condition did not come true in time")
        try:
            # Waiting on the process paces the polling and notices an early end.
            process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            continue
        raise RuntimeError(f"Locust ended (exit code {process.returncode}) before the condition")


def request_count(out: Path, method: str = "", name: str = "Aggregated") -> int:
    """Requests so far (all of them by default), from the stats CSV Locust rewrites every second."""
    try:
        with (out / "locust_stats.csv").open() as rows:
            for row in csv.DictReader(rows):
                if (row["Type"], row["Name"]) == (method, name):
                    return int(row["Request Count"])
    except (OSError, KeyError, ValueError):
        return 0
    return 0


def failure_count(out: Path) -> int:
    """Failed requests so far, of any class, from the stats CSV Locust rewrites every second."""
    try:
        with (out / "locust_stats.csv").open() as rows:
            for row in csv.DictReader(rows):
                if row["Name"] == "Aggregated":
                    return int(row["Failure Count"])
    except (OSError, KeyError, ValueError):
        return 0
    return 0


def assert_healthy_run(run: LocustRun, shopper_kind: str, users: int = 4) -> None:
    """Nothing was broken, so nothing failed, and every user shopped at app1 and kept its session."""
    assert run.returncode == 0, run.log  # not 1 (a request failed), not 3 (nothing answered)
    assert run.requests() > 0
    assert sum(run.failures().values()) == 0, run.failures()
    # Locust's count when it quit is the timeline's, its last second included.
    assert (run.totals["requests"], run.totals["failures"]) == (run.requests(), 0)
    records = run.users
    assert len(records) == users
    assert len({record["user"] for record in records}) == users
    assert sorted(record["number"] for record in records) == list(range(1, users + 1))
    # Locust starts users 3:1, shoppers to anonymous browsers.
    shoppers = [record for record in records if record["kind"] == shopper_kind]
    assert [record["user"] for record in shoppers] == [
        f"user{n}" for n in range(1, len(shoppers) + 1)
    ]
    assert {record["kind"] for record in records} == {shopper_kind, "anonymous"}
    for record in records:
        assert record["instances"].get("app1", 0) > 0, record
        assert record["first_instance"] == "app1", record
        assert record["lost"] is False, record
        assert record["first_loss_t"] is None, record
