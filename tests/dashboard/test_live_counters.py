"""The counters behind the page: read from the lab's files incrementally, counted right.

No server: the access log, the timeline and the events file are written here
the way nginx, Locust and the runner write them, a line (or half a line) at
a time.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sessions_lab.dashboard.experiment import ExperimentWatch
from sessions_lab.dashboard.jsonl import JsonLinesTail
from sessions_lab.dashboard.traffic import WINDOW_S, AccessLogTail

APPS = {"127.0.0.1:8101": "app1", "127.0.0.1:8102": "app2", "127.0.0.1:8103": "app3"}


def access_line(epoch: int, served_by: str, upstream: str, status: int = 200) -> str:
    stamp = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
    return json.dumps(
        {"time": stamp, "remote_addr": "127.0.0.1", "request": "GET /healthz HTTP/1.1",
         "status": status, "upstream_addr": upstream, "upstream_status": "200",
         "request_time": 0.001, "upstream_response_time": "0.001", "served_by": served_by}
    )  # fmt: skip


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(text)


def test_a_tail_returns_each_complete_line_once_and_keeps_half_a_line(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    tail = JsonLinesTail(log)
    assert tail.read() == []  # not written yet
    append(log, '{"n": 1}\n{"n": 2}\n{"n"')
    assert [r["n"] for r in tail.read()] == [1, 2]
    assert tail.read() == []
    append(log, ": 3}\nnot json\n")
    assert [r["n"] for r in tail.read()] == [3]
    log.write_text('{"n": 4}\n')  # truncated and rewritten: read from its start
    assert [r["n"] for r in tail.read()] == [4]


def test_a_tail_from_the_end_skips_an_earlier_runs_lines(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text('{"n": 1}\n')
    tail = JsonLinesTail(log, from_end=True)
    append(log, '{"n": 2}\n')
    assert [r["n"] for r in tail.read()] == [2]


def test_rates_per_instance_5xx_and_retries_come_from_the_access_log(tmp_path: Path) -> None:
    log = tmp_path / "nginx-access.jsonl"
    log.touch()
    traffic = AccessLogTail(log, APPS)
    now = int(time.time())
    lines = []
    for second in range(now - WINDOW_S, now):
        lines += [access_line(second, "app1", "127.0.0.1:8101")] * 4
        lines += [access_line(second, "app3", "127.0.0.1:8103")] * 2
    # app2 refused the connection; nginx retried on app3 ("a, b" is a retry).
    lines.append(access_line(now - 1, "app3", "127.0.0.1:8102, 127.0.0.1:8103"))
    # Every upstream failed: nginx's own 502, nobody served it.
    lines.append(access_line(now - 1, "", "127.0.0.1:8102, 127.0.0.1:8101", status=502))
    append(log, "\n".join(lines) + "\n")
    traffic.update()
    summary = traffic.summary(now)
    apps = summary["instances"]
    assert apps["app1"]["rate"] == 4.0
    assert apps["app3"]["rate"] == round((2 * WINDOW_S + 1) / WINDOW_S, 1)
    assert apps["app2"]["rate"] == 0.0 and apps["app2"]["retried_away"] == 2
    assert summary["retries"] == 2 and summary["errors_5xx"] == 1
    assert apps["app1"]["errors_5xx"] == 0  # nginx's own 502: no instance answered it
    assert summary["requests"] == 6 * WINDOW_S + 2
    assert len(summary["history"]) == 60 and summary["history"][-1] == 8


def test_the_current_second_is_not_counted_until_it_is_over(tmp_path: Path) -> None:
    log = tmp_path / "nginx-access.jsonl"
    log.touch()
    traffic = AccessLogTail(log, APPS)
    now = int(time.time())
    append(log, access_line(now, "app1", "127.0.0.1:8101") + "\n")
    traffic.update()
    assert traffic.summary(now)["instances"]["app1"]["rate"] == 0.0
    assert traffic.summary(now + 1)["instances"]["app1"]["rate"] == 1 / WINDOW_S


def announce(run: Path, mode: str, started_at: float) -> dict[str, Any]:
    announcement = {
        "scenario": "kill-one", "mode": mode, "started_at": started_at, "duration_s": 15,
        "timeline": str(run / "timeline.jsonl"), "events": str(run / "events.jsonl"),
        "users": str(run / "users.jsonl"),
    }  # fmt: skip
    (run / "experiment.json").write_text(json.dumps(announcement))
    return announcement


def second(t: int, logged_out: int = 0, cart_mismatch: int = 0, http_5xx: int = 0) -> str:
    failures = {"logged_out": logged_out, "cart_mismatch": cart_mismatch, "csrf": 0,
                "http_5xx": http_5xx, "connection": 0}  # fmt: skip
    return json.dumps({"t": t, "at": 0, "requests": 10, "failures_by_class": failures}) + "\n"


def test_session_losses_and_fault_events_are_followed_as_they_are_written(tmp_path: Path) -> None:
    started = time.time()
    watch = ExperimentWatch(tmp_path / "experiment.json", "sticky", lab_started_at=started - 5)
    assert watch.summary() is None
    announce(tmp_path, "sticky", started)
    live = watch.summary()
    assert live is not None and live["state"] == "running" and live["session_losses"] == 0
    append(tmp_path / "timeline.jsonl", second(0) + second(1, http_5xx=1))
    append(tmp_path / "events.jsonl", json.dumps(
        {"t": 1.5, "at": started + 1.5, "action": "kill", "target": "app2", "signal": "KILL",
         "ok": True, "message": "app2 killed (SIGKILL)"}) + "\n")  # fmt: skip
    append(tmp_path / "timeline.jsonl", second(2, logged_out=1, cart_mismatch=2))
    live = watch.summary()
    assert live["session_losses"] == 3  # logged out or cart lost; a 5xx is not a lost session
    assert live["failures_by_class"]["http_5xx"] == 1
    assert live["requests"] == 30 and live["loss_history"] == [0, 0, 3]
    assert [e["target"] for e in live["events"]] == ["app2"]
    assert watch.summary()["session_losses"] == 3  # nothing new: nothing counted twice


def test_an_earlier_runs_announcement_is_ignored(tmp_path: Path) -> None:
    now = time.time()
    watch = ExperimentWatch(tmp_path / "experiment.json", "redis", lab_started_at=now)
    announce(tmp_path, "sticky", now + 1)  # the previous mode's, not yet replaced
    assert watch.summary() is None
    announce(tmp_path, "redis", now - 600)  # a run before this lab came up
    assert watch.summary() is None
    announce(tmp_path, "redis", now + 1)
    assert watch.summary() is not None
