"""The load of one mode's run: one Locust process, or a master and its workers (``--load-workers N``).

One Locust process runs on one core (it could send some 1,600 of the
shoppers' requests a second here: docs/performance.md). With
``--load-workers N`` the runner starts Locust's own distributed mode on
loopback instead: a master (``--master``, bound to 127.0.0.1, waiting for
``--expect-workers N``) that keeps the statistics and the clock, and N
``--worker`` processes that run the users. Each worker writes its own
users, failures and timeline files (``loadtests/worker_files.py``); while
the run goes on, ``Load.follow`` merges the seconds every worker has
written into the one timeline the progress line and the dashboard read,
and ``Load.finish`` merges the rest once every process has ended. What the
runner and the summary read is then the same as with one process.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from loadtests.records import write_jsonl
from loadtests.worker_files import (
    merge_failures,
    merge_second,
    merge_users,
    read_lines,
    read_new_lines,
    worker_file,
)
from sessions_lab.cluster.network import LOOPBACK, free_port
from sessions_lab.paths import PROJECT_ROOT

LOCUSTFILE = PROJECT_ROOT / "loadtests" / "locustfile.py"
# More workers than this on a laptop only compete for its cores.
MAX_LOAD_WORKERS = 8
# Locust's totals when it quits (``--totals-out``): what the summary counts.
TOTALS_FILE = "locust_totals.json"
# How long the master waits for its workers to connect before giving up.
WORKERS_WAIT_S = 30
STOP_WAIT_S = 10


def locust_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *arguments]


def clear_worker_files(folder: Path) -> None:
    """Worker files an earlier run left in ``folder``: not this run's."""
    for stale in folder.glob("*.worker*.jsonl"):
        stale.unlink()


@dataclass
class Load:
    """The Locust processes of one run (``start``); the master, or the one process, first."""

    folder: Path
    workers: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)
    _seconds_merged: int = 0
    # Per worker: how far its timeline file has been read, and the seconds read not merged.
    _read_to: list[int] = field(default_factory=list)
    _unmerged: list[dict[int, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._read_to = [0] * self.workers
        self._unmerged = [{} for _ in range(self.workers)]

    def start(self, arguments: list[str], env: Mapping[str, str]) -> None:
        """Start Locust with ``arguments`` (after ``-f locustfile``), as one process or N+1.

        Call it inside the ``try`` whose failure calls ``stop``: a process started
        before an interruption must not outlive the run.
        """
        clear_worker_files(self.folder)
        if self.workers <= 1:
            self._spawn(locust_command(*arguments), self.folder / "locust.log", env)
            return
        port = str(free_port())
        self._spawn(
            locust_command(
                *arguments,
                "--master", "--master-bind-host", LOOPBACK, "--master-bind-port", port,
                "--expect-workers", str(self.workers),
                "--expect-workers-max-wait", str(WORKERS_WAIT_S),
            ),
            self.folder / "locust.log",
            env,
        )  # fmt: skip
        for number in range(1, self.workers + 1):
            self._spawn(
                locust_command("--worker", "--master-host", LOOPBACK, "--master-port", port),
                self.folder / f"locust.worker{number}.log",
                env,
            )

    def _spawn(self, command: list[str], log: Path, env: Mapping[str, str]) -> None:
        out = log.open("wb")
        self._logs.append(out)
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and locustfile
            command, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, env=dict(env), start_new_session=True,
        )  # fmt: skip
        self.processes.append(process)

    def running(self) -> bool:
        """Whether the master (the one process that ends the run) still runs."""
        return bool(self.processes) and self.processes[0].poll() is None

    def follow(self) -> None:
        """Merge into the timeline every second all workers have written (nothing with one)."""
        if self.workers > 1:
            self._merge_seconds(final=False)

    def stop(self) -> None:
        """End the run early: ask every process to stop (Locust writes its files on
        SIGINT), make sure, and merge what the workers wrote."""
        for process in self.processes:
            _stop(process)
        self.finish()

    def finish(self) -> None:
        """Once the master has ended: wait for the workers, then merge their files."""
        for process in self.processes[1:]:
            try:
                process.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                _stop(process)
        self._close_logs()
        if self.workers <= 1:
            return
        self._merge_seconds(final=True)
        users = [worker_file(self.folder / "users.jsonl", i) for i in range(self.workers)]
        write_jsonl(self.folder / "users.jsonl", merge_users(users))
        failures = [worker_file(self.folder / "failures.jsonl", i) for i in range(self.workers)]
        write_jsonl(self.folder / "failures.jsonl", merge_failures(failures))
        clear_worker_files(self.folder)

    def _merge_seconds(self, *, final: bool) -> None:
        """Append the merged seconds not written yet: those every worker has, or (final) any has.

        Each worker's file is read from where the last call stopped: a tick costs
        the lines written since, not the whole run again.
        """
        timeline = self.folder / "timeline.jsonl"
        for index, seconds in enumerate(self._unmerged):
            lines, self._read_to[index] = read_new_lines(
                worker_file(timeline, index), self._read_to[index]
            )
            seconds.update((line["t"], line) for line in lines)
        merged: list[dict[str, Any]] = []
        while True:
            t = self._seconds_merged
            present = [seconds for seconds in self._unmerged if t in seconds]
            if not present or (len(present) < self.workers and not final):
                break  # not every worker's yet: the next tick
            merged.append(merge_second([seconds.pop(t) for seconds in present]))
            self._seconds_merged += 1
        if merged:
            with timeline.open("a", encoding="utf-8") as out:
                out.writelines(json.dumps(line) + "\n" for line in merged)

    def _close_logs(self) -> None:
        for log in self._logs:
            log.close()
        self._logs.clear()


def locust_totals(folder: Path) -> dict[str, float]:
    """Requests, rps and percentiles of a mode's run: Locust's totals when it quit (``--totals-out``).

    A run cut short (Locust killed) has none: then the "Aggregated" row of
    its stats CSV, which Locust rewrites once a second, so it lacks the last
    second's requests (some 1% of a 40 s run).
    """
    totals_file, stats_file = folder / TOTALS_FILE, folder / "locust_stats.csv"
    if totals_file.exists():
        totals = json.loads(totals_file.read_text(encoding="utf-8"))
        return {key: totals[key] for key in ("requests", "rps", "p50_ms", "p95_ms")}
    if stats_file.exists():
        with stats_file.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row.get("Name") == "Aggregated":
                    return {
                        "requests": int(row["Request Count"]),
                        "rps": round(float(row["Requests/s"]), 1),
                        "p50_ms": _number(row.get("50%")),
                        "p95_ms": _number(row.get("95%")),
                    }
    return {"requests": 0, "rps": 0.0, "p50_ms": 0, "p95_ms": 0}


def _number(value: str | None) -> float:
    try:
        return round(float(value or 0), 1)
    except ValueError:
        return 0


def load_origin(timeline: Path) -> float | None:
    """When the load's clock (``t`` in Locust's timeline) read 0, as a Unix time; None before
    Locust has written its first second."""
    try:
        with timeline.open() as lines:
            first = json.loads(lines.readline())
    except (OSError, ValueError):
        return None
    return float(first["at"]) - float(first["t"])


def progress(folder: Path) -> str:
    """The run so far, for the progress line: requests and failures by class."""
    seconds = read_lines(folder / "timeline.jsonl")
    requests = sum(s["requests"] for s in seconds)
    failures: dict[str, int] = {}
    for second in seconds:
        for name, count in second["failures_by_class"].items():
            failures[name] = failures.get(name, 0) + count
    shown = ", ".join(f"{name} {count}" for name, count in failures.items() if count) or "none"
    return f"requests {requests}  failures: {shown}"


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Ask a Locust process to stop (it writes its stats on SIGINT), then make sure it has."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=STOP_WAIT_S)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
