"""Live traffic counters from nginx's JSON access log.

nginx has no ``stub_status`` in the lab's build, and it already writes one
JSON line per request naming the instance that answered, the status, and
every upstream it tried. ``AccessLogTail`` follows that log and keeps
per-second counts for the last minute: enough for a rolling rate (the last
few complete seconds) and a small history to draw, and bounded in memory
however long the lab runs.

A line whose ``upstream_addr`` lists several addresses ("a, b") is a retry:
nginx sent the request to ``a``, which failed (refused, reset, timed out),
and then to ``b``. Every address but the last is an instance the request was
retried away from.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sessions_lab.dashboard.jsonl import JsonLinesTail

WINDOW_S = 5  # the rolling rate: complete seconds, so a half-counted second never shows
HISTORY_S = 60  # how much per-second history the page can draw


@dataclass
class Counts:
    """What nginx logged: during one wall-clock second, or since the dashboard started."""

    requests: int = 0
    errors_5xx: int = 0
    retries: int = 0
    by_instance: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors_by_instance: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    retried_away: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class AccessLogTail:
    """Requests per instance per second, 5xx and retries, from ``access_log``.

    ``instances`` maps an upstream address ("127.0.0.1:8102") to its name, for
    lines that carry no ``served_by`` (nginx answered 502 itself).
    """

    def __init__(self, access_log: Path, instances: dict[str, str]) -> None:
        self.tail = JsonLinesTail(access_log, from_end=True)
        self.instances = instances
        self.seconds: dict[int, Counts] = {}
        self.totals = Counts()
        self._last_time: tuple[str, int] = ("", 0)

    def _epoch(self, iso: str) -> int | None:
        # Most lines of a busy second share one timestamp: parse it once.
        if iso != self._last_time[0]:
            try:
                self._last_time = (iso, int(datetime.fromisoformat(iso).timestamp()))
            except ValueError:
                return None
        return self._last_time[1]

    def _name(self, address: str) -> str:
        return self.instances.get(address.strip(), address.strip())

    def count(self, line: dict[str, Any]) -> None:
        """Add one access-log line to the counters."""
        epoch = self._epoch(str(line.get("time", "")))
        if epoch is None:
            return
        second = self.seconds.setdefault(epoch, Counts())
        # " : " separates upstream groups after an internal redirect; the lab
        # has one group, so only ", " (a retry within it) matters here.
        tried = [a for a in str(line.get("upstream_addr", "")).split(",") if a.strip()]
        try:
            is_5xx = int(line.get("status", 0)) >= 500
        except (TypeError, ValueError):
            is_5xx = False
        served_by = str(line.get("served_by") or "")
        if not served_by and tried and not is_5xx:
            # An answer without the instance's header (a static file, say):
            # the last upstream tried gave it. A 5xx without one is nginx's
            # own (every upstream failed): no instance served it.
            served_by = self._name(tried[-1])
        for counts in (second, self.totals):
            counts.requests += 1
            if served_by:
                counts.by_instance[served_by] += 1
            if is_5xx:
                counts.errors_5xx += 1
                counts.errors_by_instance[served_by or "nginx"] += 1
            if len(tried) > 1:
                counts.retries += 1
                for address in tried[:-1]:
                    counts.retried_away[self._name(address)] += 1

    def update(self) -> None:
        """Count what nginx wrote since the last update; forget seconds older than the history."""
        for line in self.tail.read():
            self.count(line)
        oldest = int(time.time()) - HISTORY_S - 1
        for epoch in [e for e in self.seconds if e < oldest]:
            del self.seconds[epoch]

    def summary(self, now: float | None = None) -> dict[str, Any]:
        """Rates over the last ``WINDOW_S`` complete seconds, totals, and per-second history."""
        current = int(time.time() if now is None else now)
        window = [self.seconds.get(e) for e in range(current - WINDOW_S, current)]
        window_seconds = [s for s in window if s is not None]
        names = sorted(
            {name for s in self.seconds.values() for name in s.by_instance}
            | set(self.totals.by_instance)
            | set(self.instances.values())
        )
        history_range = range(current - HISTORY_S, current)

        def rate(values: list[int]) -> float:
            return round(sum(values) / WINDOW_S, 1)

        return {
            "window_s": WINDOW_S,
            "rate": rate([s.requests for s in window_seconds]),
            "rate_5xx": rate([s.errors_5xx for s in window_seconds]),
            "rate_retries": rate([s.retries for s in window_seconds]),
            "requests": self.totals.requests,
            "errors_5xx": self.totals.errors_5xx,
            "retries": self.totals.retries,
            "history": [
                self.seconds[e].requests if e in self.seconds else 0 for e in history_range
            ],
            "counted_from_start": not self.tail.skipped,
            "instances": {
                name: {
                    "rate": rate([s.by_instance.get(name, 0) for s in window_seconds]),
                    "requests": self.totals.by_instance.get(name, 0),
                    "errors_5xx": self.totals.errors_by_instance.get(name, 0),
                    "retried_away": self.totals.retried_away.get(name, 0),
                    "history": [
                        self.seconds[e].by_instance.get(name, 0) if e in self.seconds else 0
                        for e in history_range
                    ],
                }
                for name in names
            },
        }
