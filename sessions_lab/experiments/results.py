"""Turn one mode's raw run (Locust's files, the users file, the fault log) into summary.json.

The field definitions are the ``summary.json`` contract of docs/architecture.md; other tools
read it, so fields are added, never renamed. Everything here is computed
from files, so a summary can be rebuilt from a results folder later.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.session_checks import FAILURE_CLASSES as FAILURES
from loadtests.session_checks import SESSION_LOSSES
from sessions_lab import order_audit as orders
from sessions_lab.experiments import failures as failure_log
from sessions_lab.experiments.load import locust_totals
from sessions_lab.experiments.server_logs import access_lines, late_writes, retried_requests

# 2: adds retried_requests, late_writes, late_writes_applied, late_writes_refused,
# cart_conflicts, users_pinned_kept and, in the head, conditional_writes.
# 3: adds the order audit (orders_acknowledged, orders_stored, orders_lost,
# orders_doubled, orders_wrong_total, orders_unacknowledged, order_audit_error),
# the failed requests explained (failed_request_groups, failures_unexplained,
# failed_reads, failed_writes, failed_checkouts, truncated_answers) and
# verdict_reason (docs/architecture.md). Schema 4: the store's own failures
# (users_by_node, faulted_node, users_on_faulted_node, users_lost_on_faulted_node,
# write_unavailable_s, stale_reads; and the run's replication). Schema 5: concurrent
# updates (updates_acknowledged, lost_updates), idle logins (users_paused,
# users_paused_logged_out, users_active_logged_out); the run's shop options. 6: load_workers.
SCHEMA_VERSION = 6
# The shoppers name the failure classes (loadtests/session_checks.py); the
# summary counts them under the same names, in the same order.
FAILURE_CLASSES = tuple(failure.value for failure in FAILURES)
SESSION_LOSS_CLASSES = tuple(name for name in FAILURE_CLASSES if name in SESSION_LOSSES)
# The failures the report explains one by one: no valid answer (failed_requests),
# and answers no shopper expects (a 404, a 429: a bug, never a fault's doing).
EXPLAINED_CLASSES = ("connection", "http_5xx", "unexpected")


@dataclass(frozen=True)
class ModeRun:
    """Where one mode's raw results lie, and what was done to the cluster during it."""

    folder: Path
    events: list[dict[str, Any]]  # {"t", "at", "action", "target", "signal"?, "ok"}
    pinned: bool  # sticky: a user's session lives on one instance
    started_at: float  # Unix time Locust's clock starts from
    duration_s: float = 0.0  # the load's length: a fault never undone lasts until then

    @property
    def users_file(self) -> Path:
        return self.folder / "users.jsonl"

    @property
    def timeline_file(self) -> Path:
        return self.folder / "timeline.jsonl"

    @property
    def failures_file(self) -> Path:
        return self.folder / "failures.jsonl"

    @property
    def logs(self) -> Path:
        """The servers' logs of this mode's run (the runner copies them here)."""
        return self.folder / "logs"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def faulted_instance(events: list[dict[str, Any]]) -> str | None:
    """The app instance the scenario broke first (kill or hang), if it broke one."""
    for event in events:
        if event["action"] == "kill" and str(event["target"]).startswith("app"):
            return str(event["target"])
    return None


# A memcached node as the lab names it: X-Session-Node's 1-based index "2" -> memcached2.
NODE_PREFIX = "memcached"


def node_name(index: str) -> str:
    """The lab's name of the node ``X-Session-Node`` numbered ``index`` ("" -> "none")."""
    return f"{NODE_PREFIX}{index}" if index else "none"


def faulted_node(events: list[dict[str, Any]]) -> str | None:
    """The memcached node the scenario killed first, if it killed one."""
    for event in events:
        if event["action"] == "kill" and str(event["target"]).startswith(NODE_PREFIX):
            return str(event["target"])
    return None


def node_before_loss(user: dict[str, Any]) -> str:
    """The node a user's session was on before its first loss (its last node if it lost none):
    where it was when the fault came, as the shoppers log in once and never log out."""
    losses = user.get("loss_nodes") or []
    return node_name(str((losses[0] if losses else None) or user.get("last_node") or ""))


def node_fields(users: list[dict[str, Any]], target: str | None) -> dict[str, Any]:
    """``users_by_node`` (by the node before the fault; {} where no answer named a node),
    ``faulted_node``, and, when a node was faulted, the users on it and those of them
    that lost their session there, every loss of theirs on that node."""
    on_nodes = [user for user in users if user.get("nodes") or any(user.get("loss_nodes") or [])]
    lost = [user for user in users if user.get("lost")]
    return {
        "users_by_node": dict(sorted(Counter(node_before_loss(u) for u in on_nodes).items())),
        "faulted_node": target,
        "users_on_faulted_node": (
            sum(1 for user in users if node_before_loss(user) == target) if target else None
        ),
        "users_lost_on_faulted_node": (
            sum(
                1
                for user in lost
                if user.get("loss_nodes")
                and all(node_name(str(node)) == target for node in user["loss_nodes"])
            )
            if target
            else None
        ),
    }


def recovery_seconds(events: list[dict[str, Any]], timeline: list[dict[str, Any]]) -> float:
    """Seconds from a fault to the last failed request it caused; the largest over the faults.

    A failure belongs to the latest fault event before it. Per-second
    buckets: the figure is good to about a second.
    """
    faults = sorted(float(e["t"]) for e in events if e["action"] in ("kill", "drain", "add"))
    if not faults:
        return 0.0
    longest = 0.0
    for second in timeline:
        failed = sum(second["failures_by_class"].values())
        if not failed:
            continue
        t_end = float(second["t"]) + 1.0
        before = [t for t in faults if t <= t_end]
        if before:
            longest = max(longest, t_end - before[-1])
    return round(longest, 1)


def on_load_clock(
    events: list[dict[str, Any]], timeline: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Events with ``t`` in seconds since the load started (the timeline's clock).

    The runner fires events on its own clock, which starts when it launches
    Locust; Locust's clock starts a second or so later, once it has booted.
    Both record Unix times, so the fault marks land where the failures are.
    """
    if not timeline or "at" not in timeline[0]:
        return events
    origin = load_origin(timeline)
    return [
        {**event, "t": round(float(event["at"]) - origin, 1)} if "at" in event else event
        for event in events
    ]


def load_origin(timeline: list[dict[str, Any]]) -> float:
    """The Unix time of the load's 0 s, from the first timeline second (0 if unknown)."""
    if not timeline or "at" not in timeline[0]:
        return 0.0
    return float(timeline[0]["at"]) - float(timeline[0]["t"])


def why_pinned_kept(
    users: list[dict[str, Any]], events: list[dict[str, Any]], target: str
) -> list[dict[str, str]]:
    """Each user pinned to the faulted instance that kept its session, and why it could.

    Its session lived on ``target``; it shows a loss only by asking for it
    after the fault. So: it made no request after the fault, or it was an
    anonymous visitor whose session held nothing yet (an empty cart).
    """
    fault_at = next(
        (
            float(e["at"])
            for e in events
            if e["action"] == "kill" and e["target"] == target and "at" in e
        ),
        None,
    )
    kept = []
    for user in users:
        if user.get("first_instance") != target or user.get("lost"):
            continue
        last = user.get("last_request_at")
        if fault_at is not None and last is not None and float(last) < fault_at:
            why = "made no request after the fault"
        elif user.get("kind") == "anonymous":
            why = "an anonymous visitor with nothing in its session to lose (an empty cart)"
        else:
            why = "no request showed a loss (see its line in users.jsonl)"
        kept.append({"user": str(user.get("user", "")), "why": why})
    return kept


def summarise_mode(run: ModeRun, expected: str, verdict_of: Any) -> dict[str, Any]:
    """One mode's entry of summary.json; ``verdict_of(result) -> str`` judges it."""
    users = read_jsonl(run.users_file)
    timeline = read_jsonl(run.timeline_file)
    stats = locust_totals(run.folder)
    events = on_load_clock(run.events, timeline)
    failures = Counter({name: 0 for name in FAILURE_CLASSES})
    for second in timeline:
        failures.update({k: v for k, v in second["failures_by_class"].items() if k in failures})
    lost = [user for user in users if user.get("lost")]
    access = access_lines(run.logs)  # nginx's log, read once for both readers
    target = faulted_instance(events)
    pinned = run.pinned and target is not None
    result: dict[str, Any] = {
        "events": [
            {k: event[k] for k in ("t", "action", "target", "signal") if event.get(k) is not None}
            for event in events
        ],
        "requests": stats["requests"],
        "failed_requests": failures["connection"] + failures["http_5xx"],
        "failures": dict(failures),
        "users_total": len(users),
        "users_lost_session": len(lost),
        "users_pinned_to_faulted_instance": (
            sum(1 for user in users if user.get("first_instance") == target) if pinned else None
        ),
        "users_lost_on_faulted_instance": (
            sum(1 for user in lost if user.get("first_instance") == target) if pinned else None
        ),
        "rps": stats["rps"],
        "p50_ms": stats["p50_ms"],
        "p95_ms": stats["p95_ms"],
        "recovery_s": recovery_seconds(events, timeline),
        "expected": expected,
        # Extensions (the contract allows adding fields):
        "users_by_instance": dict(
            sorted(Counter(user.get("first_instance") or "none" for user in users).items())
        ),
        "faulted_instance": target,
        **node_fields(users, faulted_node(events)),
        # Schema 2: what nginx and the instances logged.
        "retried_requests": retried_requests(access),
        "cart_conflicts": sum(int(user.get("conflicts", 0)) for user in users),
        "users_pinned_kept": why_pinned_kept(users, run.events, target)
        if pinned and target
        else [],
    }
    origin = load_origin(timeline)
    writes = late_writes(run.logs, access, users, origin)
    result["late_writes"] = writes
    result["late_writes_applied"] = sum(1 for write in writes if write["outcome"] == "applied")
    result["late_writes_refused"] = sum(1 for write in writes if write["outcome"] == "refused")
    # Schema 3: the order audit, and every failed request explained.
    result.update(orders.audit(users, run.folder))
    failed = [f for f in read_jsonl(run.failures_file) if f.get("failure") in EXPLAINED_CLASSES]
    groups = failure_log.explain(failed, events, access, run.logs, origin, run.duration_s)
    result["failed_request_groups"] = groups
    result["failures_unexplained"] = sum(g["count"] for g in failure_log.unexplained(groups))
    result.update(failed_by_kind(failed))
    # Schema 4: what a replicated store's failover costs.
    result["write_unavailable_s"] = write_unavailable_seconds(failed)
    result["stale_reads"] = sum(int(user.get("stale_reads", 0)) for user in users)
    # Schema 5: two tabs writing at once (only the two-tabs scenario's shoppers count them).
    for field in ("updates_acknowledged", "lost_updates"):
        result[field] = sum(int(user.get(field, 0)) for user in users)
    result.update(pauses(users))
    result["verdict"] = verdict_of(result)
    result["verdict_reason"] = verdict_reason(result)
    if result["verdict_reason"] is not None:
        result["verdict"] = "unexpected"
    return result


def pauses(users: list[dict[str, Any]]) -> dict[str, int]:
    """Shoppers who paused (``--idle-pause``), those first logged out after the pause began,
    and those first logged out while shopping (a paused one before its pause included)."""
    shoppers = [user for user in users if user.get("kind") not in ("anonymous", "unknown")]
    paused = [user for user in shoppers if user.get("paused_at") is not None]
    lost = [user for user in shoppers if user["lost"]]
    idled = [u for u in paused if u["lost"] and (u.get("first_loss_at") or 0) >= u["paused_at"]]
    return {
        "users_paused": len(paused),
        "users_paused_logged_out": len(idled),
        "users_active_logged_out": len(lost) - len(idled),
    }


def failed_by_kind(failed: list[dict[str, Any]]) -> dict[str, int]:
    """Requests without a valid answer, by what they were: reads (GET), checkouts, and
    writes (every other request: cart writes, logins, token refreshes)."""
    transport = [f for f in failed if f.get("failure") in ("connection", "http_5xx")]

    def method(failure: dict[str, Any]) -> str:
        return str(failure.get("request", "")).split(" ", 1)[0]

    return {
        "failed_reads": sum(1 for f in transport if method(f) in ("GET", "HEAD")),
        "failed_writes": sum(
            1
            for f in transport
            if method(f) not in ("GET", "HEAD") and "/checkout/" not in str(f.get("request"))
        ),
        "failed_checkouts": sum(1 for f in transport if "/checkout/" in str(f.get("request"))),
        "truncated_answers": sum(1 for f in failed if f.get("truncated")),
    }


def write_unavailable_seconds(failed: list[dict[str, Any]]) -> float:
    """Seconds during which session writes failed: from the first failed write's sending to
    the last one's answer (0 when none failed). Every request but a GET writes the session."""
    writes = [
        f
        for f in failed
        if f.get("failure") in ("connection", "http_5xx")
        and str(f.get("request", "")).split(" ", 1)[0] not in ("GET", "HEAD")
        and f.get("at") is not None
    ]
    if not writes:
        return 0.0
    start = min(float(f["at"]) for f in writes)
    end = max(float(f.get("done") or f["at"]) for f in writes)
    return round(end - start, 1)


def _orders(count: int) -> str:
    return f"{count} order{'s' if count != 1 else ''}"


def verdict_reason(result: dict[str, Any]) -> str | None:
    """Why a mode is "unexpected" (None when it is not): the first thing that went wrong.

    Whatever a scenario predicts, an order lost or doubled and a failed
    request that no fault explains are never expected.
    """
    if result["verdict"] not in ("as expected", "unexpected"):
        return None
    if result.get("orders_lost"):
        return f"{_orders(result['orders_lost'])} acknowledged, not in the database"
    if result.get("orders_doubled"):
        return f"{_orders(result['orders_doubled'])} placed twice for one checkout"
    if result.get("orders_wrong_total"):
        return f"{_orders(result['orders_wrong_total'])} stored at another total than charged"
    unexplained = failure_log.unexplained(result.get("failed_request_groups", []))
    if unexplained:
        count = result["failures_unexplained"]
        return (
            f"{count} failed request{'s' if count != 1 else ''} no fault explains: "
            + failure_log.describe(unexplained[0])
        )
    if result["verdict"] == "unexpected":
        return f"the prediction did not hold: {result['expected']}"
    return None


def not_applicable(expected: str = "this scenario does not apply to this mode") -> dict[str, Any]:
    """A mode the scenario cannot break (no store to restart): reported, not run."""
    return {
        "events": [],
        "requests": 0,
        "failed_requests": 0,
        "failures": dict.fromkeys(FAILURE_CLASSES, 0),
        "users_total": 0,
        "users_lost_session": 0,
        "users_pinned_to_faulted_instance": None,
        "users_lost_on_faulted_instance": None,
        "rps": 0.0,
        "p50_ms": 0,
        "p95_ms": 0,
        "recovery_s": 0.0,
        "expected": expected,
        "users_by_instance": {},
        "faulted_instance": None,
        "users_by_node": {},
        "faulted_node": None,
        "users_on_faulted_node": None,
        "users_lost_on_faulted_node": None,
        "retried_requests": 0,
        "late_writes": [],
        "late_writes_applied": 0,
        "late_writes_refused": 0,
        "cart_conflicts": 0,
        "users_pinned_kept": [],
        "orders_acknowledged": 0,
        "orders_stored": 0,
        "orders_lost": 0,
        "orders_doubled": 0,
        "orders_wrong_total": 0,
        "orders_unacknowledged": 0,
        "order_audit_error": None,
        "failed_request_groups": [],
        "failures_unexplained": 0,
        "failed_reads": 0,
        "failed_writes": 0,
        "write_unavailable_s": 0.0,
        "stale_reads": 0,
        "updates_acknowledged": 0,
        "lost_updates": 0,
        "users_paused": 0,
        "users_paused_logged_out": 0,
        "users_active_logged_out": 0,
        "failed_checkouts": 0,
        "truncated_answers": 0,
        "verdict": "not applicable",
        "verdict_reason": None,
    }


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
