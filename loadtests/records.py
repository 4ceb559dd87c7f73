"""What a load-test run remembers, per simulated user and per second.

Locust's own statistics count requests and failures per URL; a session lab
also needs to know *who* lost a session and *where* they were served, so
the report can say whether the users who lost their session are exactly
the users of the instance that died. ``UserRecord`` is that memory for one
user and ``Timeline`` counts every request into one-second buckets, so a
report can chart throughput and each failure class against the fault
events. Plain Python: the pytest process tests it without importing Locust.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from loadtests.session_checks import FAILURE_CLASSES, SESSION_LOSSES, Failure

# Locust exits 1 when any request failed, which a fault scenario expects; a run
# in which no request got any HTTP answer measured nothing and exits with this.
VOID_RUN_EXIT_CODE = 3


class UserKind:
    """The journeys a user can be on; the ``kind`` field of the users file."""

    SESSION = "session"
    JWT = "jwt"
    ANONYMOUS = "anonymous"
    UNKNOWN = "unknown"  # never learnt the shop's mode: it never got an answer


def _no_failures() -> dict[str, int]:
    return {failure.value: 0 for failure in FAILURE_CLASSES}


@dataclass
class UserRecord:
    """One simulated user: who it is, who served it, and what it lost when."""

    user: str
    kind: str
    number: int = 0  # unique in a run (names repeat when shoppers outnumber demo users)
    instances: Counter[str] = field(default_factory=Counter)
    first_instance: str | None = None  # served the login (anonymous: the first answer)
    last_instance: str | None = None
    first_loss_t: float | None = None  # seconds since the test started
    first_loss_at: float | None = None  # Unix time, to line up with the lab's fault events
    losses: dict[str, int] = field(default_factory=_no_failures)
    loss_instances: list[str] = field(default_factory=list)
    # Where the store is memcached nodes: the node each answer said holds the
    # session (``X-Session-Node``), the last one, and for each loss the node of the
    # session lost: the one named when that session began (its login, or the first
    # answer after the previous loss). Not simply the last node: a vanished login
    # can go unseen for a while, as a cart write quietly starts an anonymous
    # session on another node, and the loss shows later, there.
    nodes: Counter[str] = field(default_factory=Counter)
    last_node: str | None = None
    loss_nodes: list[str] = field(default_factory=list)
    session_node: str | None = None
    unexpected: int = 0
    # 412s to its If-Match (--conditional-writes): the cart had changed since it last
    # looked, so its write was refused instead of landing on a newer cart. No failure.
    conflicts: int = 0
    # Cart reads that showed the cart before the user's own acknowledged write,
    # and the right one when read again 0.5 s later (a replica behind its primary).
    # Still old then, the write was lost: a cart_mismatch, not a stale read.
    stale_reads: int = 0
    # Two tabs (loadtests/two_tabs.py): cart writes the shop acknowledged, and
    # those the cart no longer showed once both tabs were done (overwritten by
    # the other tab's save of the whole session).
    updates_acknowledged: int = 0
    lost_updates: int = 0
    # --idle-pause: when this user stopped sending requests (Unix time), and for
    # how long; None: it never paused.
    paused_at: float | None = None
    paused_s: float = 0.0
    last_request_at: float | None = None  # Unix time: did it ask anything after a fault?
    # Each checkout the shop acknowledged (201): {"order", "total", "key"}; and the
    # Idempotency-Keys of checkouts no 201 acknowledged (no answer after every
    # attempt, or a refusal after a retry: placed or not, the order audit tells).
    orders: list[dict[str, Any]] = field(default_factory=list)
    checkouts_unacknowledged: list[str] = field(default_factory=list)

    @property
    def lost(self) -> bool:
        return any(self.losses[failure.value] for failure in SESSION_LOSSES)

    def served(self, instance: str, at: float | None = None, node: str = "") -> None:
        """Count an answer from ``instance`` (the ``X-Served-By`` header) to a request made
        ``at``, which said its session is on ``node`` (``X-Session-Node``, if any)."""
        if at is not None:
            self.last_request_at = at
        if node:
            self.nodes[node] += 1
            self.last_node = node
            self.session_node = self.session_node or node
        if not instance:
            return  # nginx answered itself (a 502), or no answer at all
        self.instances[instance] += 1
        self.last_instance = instance

    def pin(self, instance: str, node: str = "") -> None:
        """Remember where the session began: in ``sticky`` mode, where it lives. Each login
        also names the node its new session is on (``node``, memcached nodes only)."""
        if instance and self.first_instance is None:
            self.first_instance = instance
        if node:
            self.session_node = node

    def failed(self, failure: Failure, t: float, at: float) -> None:
        """Count one failure; a session loss is blamed on the instance that served the user
        last, and on the node of the session it lost (the next one's is the next named)."""
        if failure is Failure.UNEXPECTED:
            self.unexpected += 1
            return
        self.losses[failure.value] += 1
        if failure in SESSION_LOSSES:
            self.loss_instances.append(self.last_instance or self.first_instance or "")
            self.loss_nodes.append(self.session_node or self.last_node or "")
            self.session_node = None
            if self.first_loss_t is None:
                self.first_loss_t, self.first_loss_at = round(t, 3), round(at, 3)

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "kind": self.kind,
            "number": self.number,
            "instances": dict(sorted(self.instances.items())),
            "first_instance": self.first_instance,
            "last_instance": self.last_instance,
            "lost": self.lost,
            "first_loss_t": self.first_loss_t,
            "first_loss_at": self.first_loss_at,
            "losses": dict(self.losses),
            "loss_instances": list(self.loss_instances),
            "nodes": dict(sorted(self.nodes.items())),
            "last_node": self.last_node,
            "loss_nodes": list(self.loss_nodes),
            "unexpected": self.unexpected,
            "conflicts": self.conflicts,
            "stale_reads": self.stale_reads,
            "updates_acknowledged": self.updates_acknowledged,
            "lost_updates": self.lost_updates,
            "paused_at": self.paused_at,
            "paused_s": self.paused_s,
            "last_request_at": self.last_request_at,
            "orders": list(self.orders),
            "checkouts_unacknowledged": list(self.checkouts_unacknowledged),
        }


def write_users(path: Path, records: list[UserRecord]) -> None:
    """The users file: one JSON object per line, one line per user."""
    write_jsonl(path, [record.to_json() for record in records])


def write_jsonl(path: Path, lines: list[dict[str, Any]]) -> None:
    """One JSON object per line (the users file, the failures file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        out.writelines(json.dumps(line) + "\n" for line in lines)


def write_totals(path: Path, total: Any) -> None:
    """Locust's totals (its ``StatsEntry`` of every request, a master's summed from its workers)."""
    totals = {
        "requests": total.num_requests,
        "failures": total.num_failures,
        "rps": round(total.total_rps, 1),
        "p50_ms": total.get_response_time_percentile(0.5),
        "p95_ms": total.get_response_time_percentile(0.95),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(totals) + "\n", encoding="utf-8")


@dataclass
class _Second:
    requests: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    response_ms: list[float] = field(default_factory=list)


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return round(sorted_values[index], 1)


class Timeline:
    """Requests and failures per second since the test started, written as they complete.

    Locust's ``--csv-full-history`` has throughput and percentiles over time
    but no failure classes (and its Error column is a repr to parse), so the
    lab keeps its own. A bucket is written once its second is over, so a
    runner can tail the file for a live progress display. Seconds without a
    single request still get a line: a gap in the chart is the news when the
    load balancer is down.
    """

    def __init__(self, started_at: float, out: TextIO | None = None) -> None:
        self.started_at = started_at
        self.out = out
        # A worker of a distributed run also writes each second's response times,
        # so the lab can merge the workers' seconds into exact percentiles.
        self.raw = False
        self._seconds: dict[int, _Second] = {}
        self._next = 0  # the first second not written yet

    def add(self, at: float, failure: str | None, response_ms: float) -> None:
        """Count one request that completed at Unix time ``at``."""
        second = self._seconds.setdefault(max(0, int(at - self.started_at)), _Second())
        second.requests += 1
        second.response_ms.append(response_ms)
        if failure:
            second.failures[failure] += 1

    def flush(self, now: float, *, final: bool = False) -> list[dict[str, Any]]:
        """Write (and return) every second that has ended by ``now``; all of them when ``final``."""
        end = int(now - self.started_at) + (1 if final else 0)
        lines = [self._line(t) for t in range(self._next, end)]
        self._next = max(self._next, end)
        if self.out is not None and lines:
            self.out.writelines(json.dumps(line) + "\n" for line in lines)
            self.out.flush()
        return lines

    def _line(self, t: int) -> dict[str, Any]:
        second = self._seconds.pop(t, _Second())
        line = second_line(
            t, self.started_at, second.requests, second.failures, sorted(second.response_ms)
        )
        if self.raw:
            line[RAW_TIMES] = [round(ms, 1) for ms in sorted(second.response_ms)]
        return line


# A worker's timeline line only: its response times that second, in ms.
RAW_TIMES = "response_ms"


def second_line(
    t: int, started_at: float, requests: int, failures: Counter[str], times: list[float]
) -> dict[str, Any]:
    """One second of the timeline file; ``times`` sorted."""
    return {
        "t": t,
        "at": round(started_at + t, 3),
        "requests": requests,
        "failures_by_class": {f.value: failures[f.value] for f in FAILURE_CLASSES},
        "unexpected": failures[Failure.UNEXPECTED.value],
        "p50_ms": _percentile(times, 0.50),
        "p95_ms": _percentile(times, 0.95),
    }
