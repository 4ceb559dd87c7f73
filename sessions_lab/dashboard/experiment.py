"""Live session-loss counts and fault events of the experiment under way.

The experiment runner announces each mode it measures in
``<run>/experiment.json`` (scenario, mode, start, duration and the paths of
its live files); Locust appends one line per second to the timeline, with
failures counted by class, and the runner one line per fault event it fires.
``ExperimentWatch`` follows both files so the page can show losses rising
(or staying at zero) while it happens.

``experiment.json`` outlives its run (nothing removes it), and the runner
brings up a new lab for each mode: an announcement older than this lab, or
for another mode, belongs to an earlier run and is ignored.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from loadtests.session_checks import FAILURE_CLASSES as FAILURES
from loadtests.session_checks import SESSION_LOSSES
from sessions_lab.dashboard.jsonl import JsonLinesTail

# The classes the shoppers count, by the names Locust's timeline uses.
FAILURE_CLASSES = tuple(failure.value for failure in FAILURES)
# A user found itself logged out, or its cart differed from what it put in:
# what the lab measures as a lost session (docs/architecture.md, "Session loss").
SESSION_LOSS_CLASSES = tuple(name for name in FAILURE_CLASSES if name in SESSION_LOSSES)
# Locust writes a timeline line once a second has ended; a run whose
# timeline has not grown for this long, past its planned end, is over.
STALE_AFTER_S = 4.0
EVENTS_SHOWN = 20


class ExperimentRun:
    """The running totals of one announced mode."""

    def __init__(self, announcement: dict[str, Any]) -> None:
        self.announcement = announcement
        self.timeline = JsonLinesTail(Path(announcement["timeline"]))
        self.events_tail = JsonLinesTail(Path(announcement["events"]))
        self.seconds = 0
        self.requests = 0
        self.failures = dict.fromkeys(FAILURE_CLASSES, 0)
        self.loss_history: list[int] = []  # session losses per second, from t = 0
        self.events: list[dict[str, Any]] = []
        self.last_growth = time.time()

    def update(self) -> None:
        seconds = self.timeline.read()
        events = self.events_tail.read()
        if seconds or events:
            self.last_growth = time.time()
        for second in seconds:
            self.seconds = max(self.seconds, int(second.get("t", 0)) + 1)
            self.requests += int(second.get("requests", 0))
            by_class = second.get("failures_by_class") or {}
            for name in FAILURE_CLASSES:
                self.failures[name] += int(by_class.get(name, 0))
            self.loss_history.append(sum(int(by_class.get(n, 0)) for n in SESSION_LOSS_CLASSES))
        self.events.extend(
            {
                key: event.get(key)
                for key in ("t", "at", "action", "target", "signal", "ok", "message")
            }
            for event in events
        )

    def summary(self, now: float) -> dict[str, Any]:
        started = float(self.announcement.get("started_at", now))
        duration = float(self.announcement.get("duration_s", 0))
        running = now < started + duration + STALE_AFTER_S or (
            now - self.last_growth < STALE_AFTER_S
        )
        return {
            "state": "running" if running else "finished",
            "scenario": self.announcement.get("scenario"),
            "mode": self.announcement.get("mode"),
            "elapsed_s": round(min(max(0.0, now - started), duration), 1),
            "duration_s": duration,
            "seconds_counted": self.seconds,
            "requests": self.requests,
            "failures_by_class": dict(self.failures),
            "session_losses": sum(self.failures[name] for name in SESSION_LOSS_CLASSES),
            "loss_history": self.loss_history[-120:],
            "events": self.events[-EVENTS_SHOWN:],
        }


class ExperimentWatch:
    """The experiment announced for this lab, if any, followed incrementally."""

    def __init__(self, announcement: Path, mode: str, lab_started_at: float) -> None:
        self.path = announcement
        self.mode = mode
        self.lab_started_at = lab_started_at
        self.run: ExperimentRun | None = None
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of the file last read

    def _read_announcement(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self.run, self._seen = None, None
            return
        if (stat.st_mtime_ns, stat.st_size) == self._seen:
            return
        try:
            announcement = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # being written: the next poll reads it
        self._seen = (stat.st_mtime_ns, stat.st_size)
        if not isinstance(announcement, dict) or not {"timeline", "events"} <= set(announcement):
            return
        # The runner writes it after `up` returns; a small slack for clocks
        # rounding. Anything older is a previous run's.
        current = (
            announcement.get("mode") == self.mode
            and float(announcement.get("started_at", 0)) >= self.lab_started_at - 1.0
        )
        if not current:
            self.run = None
        elif self.run is None or self.run.announcement != announcement:
            self.run = ExperimentRun(announcement)

    def summary(self, now: float | None = None) -> dict[str, Any] | None:
        """The live counts, or None when no experiment runs on this lab."""
        self._read_announcement()
        if self.run is None:
            return None
        self.run.update()
        return self.run.summary(time.time() if now is None else now)
