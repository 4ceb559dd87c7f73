"""Every failed request explained, and the order audit, as summary.json and the report show them.

No servers: the shoppers' files and the servers' logs are written here as
they write them. A failure that no fault explains — injected here before
the fault — must turn the verdict to "unexpected" with that failure as the
reason; a lost or doubled order must too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from sessions_lab import order_audit as orders
from sessions_lab.experiments import failures
from sessions_lab.experiments.report import markdown
from sessions_lab.experiments.results import ModeRun, summarise_mode
from sessions_lab.experiments.runner import spawn_rate
from sessions_lab.experiments.scenarios import get_scenario, verdict
from tests.test_experiment_results import second, write_run

ORIGIN = 1_000_000.0  # the load's 0 s, as Unix time
KILL = [
    {"t": 12.0, "action": "kill", "target": "app2", "signal": "KILL"},
    {"t": 21.0, "action": "start", "target": "app2"},
]


# nginx's clock in these logs: two hours east of UTC (its access log's `time`
# says so); Django's is UTC (TIME_ZONE).
NGINX_UTC_OFFSET = 7200


def nginx_time(at: float) -> str:
    return time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime(at + NGINX_UTC_OFFSET))


def app_time(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at)) + ",123"


def failed(
    t: float, request: str, status: int, *, rid: str = "", error: str = "", served_by: str = ""
) -> dict[str, Any]:
    return {
        "at": ORIGIN + t, "done": ORIGIN + t + (5.0 if status == 504 else 0.01), "t": t,
        "user": "user3", "request": request, "status": status, "error": error,
        "truncated": False, "failure": "http_5xx" if status else "connection",
        "served_by": served_by, "request_id": rid,
    }  # fmt: skip


def access(request: str, upstream: str, status: int, rid: str = "", served: str = "") -> str:
    return json.dumps(
        {"time": "2026-11-30T12:00:00+02:00", "request_id": rid,
         "request": f"{request} HTTP/1.1", "status": status, "upstream_addr": upstream,
         "served_by": served}
    )  # fmt: skip


# A login that timed out at 5 s on app1, long before any fault: the "one failure".
LOGIN_TIMEOUT = failed(3.0, "POST /api/session/login/", 504, rid="r-login")
LOGIN_ACCESS = access("POST /api/session/login/", "127.0.0.1:8101", 504, rid="r-login")
LOGIN_ERROR = (
    f"{nginx_time(ORIGIN + 8.0)} [error] 77#77: *12 upstream timed out (110: Connection timed "
    "out) while reading response header from upstream, client: 127.0.0.1, server: , request: "
    '"POST /api/session/login/ HTTP/1.1", upstream: "http://127.0.0.1:8101/api/session/login/", '
    'host: "127.0.0.1:8080"'
)
# Who is at which address: learnt from answers that named their instance.
NAMES = [
    access("GET /api/cart/", "127.0.0.1:8101", 200, served="app1"),
    access("GET /api/cart/", "127.0.0.1:8102", 200, served="app2"),
]


def recorded(
    folder: Path,
    failed_requests: list[dict[str, Any]],
    *,
    access_lines: list[str] = (),
    nginx: list[str] = (),
    app1: list[str] = (),
    users: list[dict[str, Any]] | None = None,
    placed: Any = (),
) -> ModeRun:
    write_run(folder, users or [], [second(t) | {"at": ORIGIN + t} for t in range(30)])
    (folder / "failures.jsonl").write_text("".join(json.dumps(f) + "\n" for f in failed_requests))
    (folder / "orders.json").write_text(json.dumps(list(placed) if placed != () else []))
    logs = folder / "logs"
    logs.mkdir()
    (logs / "nginx-access.jsonl").write_text("\n".join([*NAMES, *access_lines]) + "\n")
    (logs / "nginx.log").write_text("\n".join(["2026/11/30 00:00:00 [notice] 1#1: start", *nginx]))
    (logs / "app1.log").write_text("\n".join(["booted", *app1]) + "\n")
    return ModeRun(folder, KILL, pinned=False, started_at=ORIGIN, duration_s=30)


def kill_one(run: ModeRun) -> dict[str, Any]:
    scenario = get_scenario("kill-one")
    return summarise_mode(run, "x", lambda r: verdict(scenario, "redis", r, "sqlite", "none"))


# ------------------------------------------------------------------ failures


def test_a_fault_window_runs_from_the_event_to_a_grace_after_the_target_is_back() -> None:
    windows = failures.fault_windows(KILL, duration=30)
    assert [(w.start, w.end, w.label) for w in windows] == [
        (12.0 - failures.IN_FLIGHT_S, 21.0 + failures.GRACE_S, "kill app2 (KILL) at 12.0 s")
    ]
    # Never started again: the fault lasts until the load ends.
    (never_back,) = failures.fault_windows(KILL[:1], duration=30)
    assert never_back.end == 30 + failures.GRACE_S


def test_a_failure_before_any_fault_makes_the_verdict_unexpected_with_it_as_the_reason(
    tmp_path: Path,
) -> None:
    run = recorded(
        tmp_path / "redis", [LOGIN_TIMEOUT], access_lines=[LOGIN_ACCESS], nginx=[LOGIN_ERROR]
    )
    result = kill_one(run)
    (group,) = result["failed_request_groups"]
    assert group == {
        "first_t": 3.0, "last_t": 3.0, "count": 1, "request": "POST /api/session/login/",
        "answer": "504", "instance": "app1", "phase": "before any fault",
        "cause": "nginx: upstream timed out (110: Connection timed out) while reading "
        "response header from upstream (app1)",
        "explained": False,
    }  # fmt: skip
    assert result["failures_unexplained"] == 1
    assert result["verdict"] == "unexpected"
    assert result["verdict_reason"].startswith("1 failed request no fault explains: ")
    assert (
        "POST /api/session/login/ → 504 at 3.0 s via app1, before any fault"
        in (result["verdict_reason"])
    )
    report = markdown({**summary_head(), "modes": {"redis": result}})
    assert "UNEXPLAINED: POST /api/session/login/ → 504" in report
    assert "Unexpected: 1 failed request no fault explains" in report


def test_failures_during_the_kill_are_explained_grouped_and_counted_by_kind(
    tmp_path: Path,
) -> None:
    refused = [
        f"{nginx_time(ORIGIN + 12.5)} [error] 77#77: *4{item} connect() failed (111: Connection "
        "refused) while connecting to upstream, client: 127.0.0.1, server: , request: "
        f'"PUT /api/cart/items/{item}/ HTTP/1.1", upstream: '
        f'"http://127.0.0.1:8102/api/cart/items/{item}/", host: "127.0.0.1:8080"'
        for item in (7, 9)
    ]
    crashed = [
        f"{app_time(ORIGIN + 14.0)} ERROR django.request Internal Server Error: /api/checkout/",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in f',
        "django.db.utils.OperationalError: database is locked",
    ]
    run = recorded(
        tmp_path / "redis",
        [
            failed(12.4, "PUT /api/cart/items/7/", 502, rid="a"),
            failed(12.5, "PUT /api/cart/items/9/", 502, rid="b"),
            failed(14.0, "POST /api/checkout/", 500, served_by="app1"),
            failed(13.0, "GET /api/cart/", 0, error="ConnectionResetError: reset by peer"),
        ],
        access_lines=[
            access("PUT /api/cart/items/7/", "127.0.0.1:8102", 502, rid="a"),
            access("PUT /api/cart/items/9/", "127.0.0.1:8102", 502, rid="b"),
        ],
        nginx=refused,
        app1=crashed,
    )
    result = kill_one(run)
    groups = {group["request"]: group for group in result["failed_request_groups"]}
    assert all(group["explained"] for group in groups.values())
    assert result["failures_unexplained"] == 0 and result["verdict"] == "as expected"
    assert result["verdict_reason"] is None
    put = groups["PUT /api/cart/items/[id]/"]
    assert put["count"] == 2 and put["instance"] == "app2"  # grouped: ids do not split them
    assert put["phase"] == "during kill app2 (KILL) at 12.0 s"
    assert (
        put["cause"]
        == "nginx: connect() failed (111: Connection refused) while connecting to upstream (app2)"
    )
    assert groups["POST /api/checkout/"]["cause"] == (
        "app1: django.db.utils.OperationalError: database is locked"
    )
    assert groups["GET /api/cart/"]["cause"] == "no answer: ConnectionResetError: reset by peer"
    assert (result["failed_reads"], result["failed_writes"], result["failed_checkouts"]) == (
        1,
        2,
        1,
    )


def test_an_answer_no_shopper_expects_is_never_explained_by_a_fault(tmp_path: Path) -> None:
    throttled = failed(13.0, "POST /api/session/login/", 429, served_by="app1")
    throttled["failure"] = "unexpected"
    result = kill_one(recorded(tmp_path / "redis", [throttled]))
    (group,) = result["failed_request_groups"]
    assert group["phase"].startswith("during kill app2") and not group["explained"]
    assert result["verdict"] == "unexpected"


# ------------------------------------------------------------------ orders


def shopper_with_orders(
    name: str, acknowledged: list[tuple[int, str, str]], unanswered: list[str] = ()
) -> dict[str, Any]:
    return {
        "user": name, "kind": "session", "first_instance": "app1", "lost": False,
        "orders": [{"order": order, "total": total, "key": key} for order, total, key in acknowledged],
        "checkouts_unacknowledged": list(unanswered),
    }  # fmt: skip


def placed(order: int, user: str, total: str, key: str | None) -> dict[str, Any]:
    return {"id": order, "user": user, "total": total, "instance": "app1", "key": key}


def test_the_audit_counts_lost_doubled_wrongly_charged_and_unacknowledged_orders(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    users = [
        shopper_with_orders("user1", [(1, "10.00", "k1"), (2, "5.00", "k2"), (3, "7.00", "k3")]),
        shopper_with_orders("user2", [(4, "3.00", "k4")], unanswered=["k5"]),
    ]
    (folder / "orders.json").write_text(
        json.dumps(
            [
                placed(1, "user1", "10.00", "k1"),
                # 2 is lost; 3 stored at another total than the shopper was charged:
                placed(3, "user1", "7.50", "k3"),
                placed(4, "user2", "3.00", "k4"),
                placed(6, "user2", "3.00", "k4"),  # twice for one key: doubled
                placed(7, "user2", "9.00", "k5"),  # placed, but its client heard nothing
                placed(8, "user2", "9.00", None),  # no key a shopper sent: doubled
                placed(9, "alice", "1.00", None),  # a person using the shop meanwhile
            ]
        )
    )
    assert orders.audit(users, folder) == {
        "orders_acknowledged": 4, "orders_stored": 6, "orders_lost": 1, "orders_doubled": 2,
        "orders_wrong_total": 1, "orders_unacknowledged": 1, "order_audit_error": None,
    }  # fmt: skip


def test_an_order_audit_that_could_not_read_the_database_says_why(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    (folder / "orders.json").write_text(json.dumps({"error": "manage.py failed (exit 1)"}))
    audit = orders.audit([shopper_with_orders("user1", [(1, "1.00", "k1")])], folder)
    assert audit["orders_lost"] is None and audit["orders_acknowledged"] == 1
    assert audit["order_audit_error"] == "manage.py failed (exit 1)"


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        ([], "1 order acknowledged, not in the database"),
        (
            [placed(1, "user1", "10.00", "k1"), placed(2, "user1", "10.00", "k1")],
            "1 order placed twice for one checkout",
        ),
    ],
)
def test_a_lost_or_doubled_order_makes_any_verdict_unexpected(
    tmp_path: Path, stored: list[dict[str, Any]], reason: str
) -> None:
    users = [shopper_with_orders("user1", [(1, "10.00", "k1")])]
    result = kill_one(recorded(tmp_path / "redis", [], users=users, placed=stored))
    assert (result["verdict"], result["verdict_reason"]) == ("unexpected", reason)


def test_logins_spread_over_the_first_part_of_the_run_at_least_one_a_second() -> None:
    assert spawn_rate(20, 30) == pytest.approx(20 / 4.5)
    assert spawn_rate(2, 30) == 1.0
    assert spawn_rate(300, 5) == 300.0  # a run shorter than its ramp: all at once


def summary_head() -> dict[str, Any]:
    return {
        "scenario": "kill-one", "instances": 3, "users": 6, "duration_s": 30,
        "affinity": "cookie", "db": "sqlite", "redis_persistence": "none",
    }  # fmt: skip
