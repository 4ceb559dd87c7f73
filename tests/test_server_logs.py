"""What nginx and the instances log, read into summary.json and the report; and the
predictions that rest on it (the drain's re-sent requests, hang-one's late writes).

No servers: the logs are written here as the servers write them.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, override_settings

from sessions_lab.experiments.notes import server_notes
from sessions_lab.experiments.report import markdown
from sessions_lab.experiments.results import ModeRun, summarise_mode
from sessions_lab.experiments.scenarios import get_scenario, verdict
from tests.test_experiment_results import second, write_run

ORIGIN = 1_000_000.0  # the load's 0 s, as Unix time


def access(request: str, upstream: str, status: int = 200, rid: str = "", served: str = "") -> str:
    return json.dumps(
        {
            "request_id": rid,
            "request": f"{request} HTTP/1.1",
            "status": status,
            "upstream_addr": upstream,
            "upstream_status": "504, 200" if "," in upstream else "200",
            "served_by": served,
        }
    )


def late_line(
    rid: str, user: str, status: int, at: float, sent_at: float, instance: str = "app2"
) -> str:
    record = {
        "request_id": rid, "method": "PUT", "path": "/api/cart/items/5/", "user": user,
        "status": status, "instance": instance, "sent_at": sent_at, "at": at,
    }  # fmt: skip
    return f"2026-11-29 10:00:00,000 WARNING shop.late_writes late write {json.dumps(record)}"


def shopper(name: str, cart_lost_at: float | None = None) -> dict[str, Any]:
    losses = {"logged_out": 0, "cart_mismatch": 1 if cart_lost_at else 0}
    return {
        "user": name, "kind": "session", "first_instance": "app1", "lost": bool(cart_lost_at),
        "losses": losses, "first_loss_at": cart_lost_at, "conflicts": 1,
    }  # fmt: skip


def recorded_run(
    folder: Path,
    users: list[dict],
    access_lines: list[str],
    app2: list[str],
    app3: list[str] | None = None,
) -> ModeRun:
    write_run(folder, users, [second(t) | {"at": ORIGIN + t} for t in range(30)])
    logs = folder / "logs"
    logs.mkdir()
    (logs / "nginx-access.jsonl").write_text("\n".join(access_lines) + "\n")
    (logs / "app2.log").write_text("\n".join(["booted", *app2]) + "\n")
    (logs / "app3.log").write_text("\n".join(["booted", *(app3 or [])]) + "\n")
    hang = [
        {"t": 12.0, "action": "kill", "target": "app2", "signal": "STOP"},
        {"t": 19.5, "action": "start", "target": "app2"},
    ]
    return ModeRun(folder, hang, pinned=False, started_at=ORIGIN)


def hang_one(mode: str, run: ModeRun, conditional: bool = False) -> dict[str, Any]:
    scenario = get_scenario("hang-one")
    expectation = scenario.expectation(mode, conditional_writes=conditional)
    assert expectation is not None
    return summarise_mode(
        run,
        expectation.text,
        lambda r: verdict(scenario, mode, r, "sqlite", "none", conditional_writes=conditional),
    )


def test_a_late_write_is_matched_to_what_the_client_got_and_to_the_cart_it_overwrote(
    tmp_path: Path,
) -> None:
    run = recorded_run(
        tmp_path / "redis",
        [shopper("user3", cart_lost_at=ORIGIN + 21.0), shopper("user4")],
        [
            access("GET /api/cart/", "127.0.0.1:8101"),
            access(
                "PUT /api/cart/items/5/", "127.0.0.1:8102, 127.0.0.1:8103", rid="r1", served="app3"
            ),
        ],
        [late_line("r1", "user3", 200, at=ORIGIN + 19.6, sent_at=ORIGIN + 12.5)],
        # The re-sent copy carries the first attempt's start time: late by its
        # look, but it is the answer the client got, not a late write.
        app3=[
            late_line("r1", "user3", 200, at=ORIGIN + 17.6, sent_at=ORIGIN + 12.5, instance="app3")
        ],
    )
    result = hang_one("redis", run)
    assert result["retried_requests"] == 1
    assert result["late_writes"] == [
        {
            "t": 19.6, "instance": "app2", "request": "PUT /api/cart/items/5/", "user": "user3",
            "late_by_s": 7.1, "status": 200, "outcome": "applied", "overwrote": True,
            "client_got": 200, "client_served_by": "app3",
        }
    ]  # fmt: skip
    assert (result["late_writes_applied"], result["late_writes_refused"]) == (1, 0)
    assert result["cart_conflicts"] == 2
    # One cart lost, one late write applied: explained, so as predicted.
    assert result["verdict"] == "as expected"
    assert "applies the writes it held a second time" in result["expected"]
    [note] = [n for n in server_notes(result) if n.startswith("Late write")]
    assert "for user3 7.1 s after nginx sent it; meanwhile the client got 200 from app3" in note
    assert "over a newer cart" in note


def test_a_lost_cart_no_late_write_explains_is_unexpected(tmp_path: Path) -> None:
    run = recorded_run(tmp_path / "redis", [shopper("user3", cart_lost_at=ORIGIN + 21.0)], [], [])
    assert hang_one("redis", run)["verdict"] == "unexpected"


def test_with_conditional_writes_a_refused_late_write_overwrites_nothing(tmp_path: Path) -> None:
    run = recorded_run(
        tmp_path / "redis",
        [shopper("user3")],
        [access("PUT /api/cart/items/5/", "127.0.0.1:8102, 127.0.0.1:8103", rid="r1")],
        [late_line("r1", "user3", 412, at=ORIGIN + 19.6, sent_at=ORIGIN + 12.5)],
    )
    result = hang_one("redis", run, conditional=True)
    assert (result["late_writes_applied"], result["late_writes_refused"]) == (0, 1)
    assert result["verdict"] == "as expected"
    assert "refused (412)" in result["expected"]
    assert "refused it with 412" in markdown({"modes": {"redis": result}} | HEAD)


def test_with_conditional_writes_any_lost_cart_is_unexpected(tmp_path: Path) -> None:
    run = recorded_run(tmp_path / "redis", [shopper("user3", cart_lost_at=ORIGIN + 21.0)], [], [])
    assert hang_one("redis", run, conditional=True)["verdict"] == "unexpected"


def test_in_cookie_mode_late_writes_change_nothing(tmp_path: Path) -> None:
    expectation = get_scenario("hang-one").expectation("cookie")
    assert expectation is not None and "reach nobody" in expectation.text


HEAD = {
    "scenario": "hang-one", "instances": 3, "users": 2, "duration_s": 30, "affinity": "cookie",
    "db": "sqlite", "redis_persistence": "none",
}  # fmt: skip


@pytest.mark.parametrize(
    ("scenario", "retried", "failed", "expected"),
    [
        ("rolling-restart-nodrain", 3, 0, "as expected"),
        ("rolling-restart-nodrain", 0, 0, "unexpected"),  # the drain's contrast is gone
        ("rolling-restart", 0, 0, "as expected"),
        ("rolling-restart", 1, 0, "unexpected"),  # nginx tried a stopping instance
        ("rolling-restart", 0, 2, "unexpected"),
    ],
)
def test_the_drain_is_judged_by_the_requests_nginx_had_to_re_send(
    scenario: str, retried: int, failed: int, expected: str
) -> None:
    result = {
        "users_lost_session": 0,
        "failed_requests": failed,
        "retried_requests": retried,
        "failures": {"logged_out": 0},
    }
    assert verdict(get_scenario(scenario), "redis", result, "sqlite", "none") == expected


# ------------------------------------------------------------------ the shop's side


def put(client: Client, started: float) -> None:
    client.put(
        "/api/cart/items/1/",
        data={"quantity": 2},
        content_type="application/json",
        headers={"X-Request-Start": f"t={started:.3f}", "X-Request-ID": "abc123"},
    )


@pytest.mark.django_db
@override_settings(LATE_WRITE_AFTER_S=5)
def test_an_instance_logs_a_write_it_answers_after_nginx_gave_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = Client()
    with caplog.at_level(logging.WARNING, logger="shop.late_writes"):
        put(client, time.time())  # on time: nothing to say
        client.get("/api/cart/", headers={"X-Request-Start": f"t={time.time() - 60:.3f}"})
        assert caplog.records == []  # a late read changes nothing
        put(client, time.time() - 7.5)
    [record] = caplog.records
    prefix, _, payload = record.getMessage().partition("{")
    written = json.loads("{" + payload)
    assert prefix == "late write "
    assert written["request_id"] == "abc123"
    assert (written["method"], written["path"], written["status"]) == (
        "PUT",
        "/api/cart/items/1/",
        200,
    )
    assert written["at"] - written["sent_at"] >= 7.5


def late(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "shop.late_writes"]


@pytest.mark.django_db
@override_settings(LATE_WRITE_AFTER_S=5, LOGIN_WAIT_S=30)
def test_a_login_nginx_still_waits_for_is_not_a_late_write(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """nginx gives a login LOGIN_WAIT_S (a password hash queued on a busy machine), not 5 s."""
    login = {"username": "nobody", "password": "wrong"}
    with caplog.at_level(logging.WARNING, logger="shop.late_writes"):
        Client().post(
            "/api/session/login/", data=login, content_type="application/json",
            headers={"X-Request-Start": f"t={time.time() - 12:.3f}"},
        )  # fmt: skip
        assert late(caplog) == []
        Client().post(
            "/api/session/login/", data=login, content_type="application/json",
            headers={"X-Request-Start": f"t={time.time() - 31:.3f}"},
        )  # fmt: skip
    [record] = late(caplog)
    assert '"path": "/api/session/login/"' in record.getMessage()


@pytest.mark.django_db
def test_a_missing_or_garbled_request_start_is_not_a_late_write(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = Client()
    with caplog.at_level(logging.WARNING, logger="shop.late_writes"):
        client.put("/api/cart/items/1/", data={"quantity": 1}, content_type="application/json")
        client.put(
            "/api/cart/items/1/",
            data={"quantity": 1},
            content_type="application/json",
            headers={"X-Request-Start": "t=yesterday"},
        )
    assert caplog.records == []


def test_the_report_says_why_a_user_pinned_to_the_killed_instance_kept_its_session(
    tmp_path: Path,
) -> None:
    pinned = [
        {"user": "user1", "kind": "session", "first_instance": "app2", "lost": True},
        {"user": "user2", "kind": "session", "first_instance": "app2", "lost": False,
         "last_request_at": ORIGIN + 3.0},
        {"user": "anonymous1", "kind": "anonymous", "first_instance": "app2", "lost": False,
         "last_request_at": ORIGIN + 9.0},
        {"user": "user3", "kind": "session", "first_instance": "app1", "lost": False},
    ]  # fmt: skip
    write_run(tmp_path / "sticky", pinned, [second(t) | {"at": ORIGIN + t} for t in range(10)])
    kill = [
        {"t": 4.0, "at": ORIGIN + 4.0, "action": "kill", "target": "app2", "signal": "KILL"},
        {"t": 7.0, "at": ORIGIN + 7.0, "action": "start", "target": "app2"},
    ]
    run = ModeRun(tmp_path / "sticky", kill, pinned=True, started_at=ORIGIN)
    scenario = get_scenario("kill-one")
    result = summarise_mode(run, "x", lambda r: verdict(scenario, "sticky", r, "sqlite", "none"))
    assert result["users_pinned_kept"] == [
        {"user": "user2", "why": "made no request after the fault"},
        {"user": "anonymous1", "why": "an anonymous visitor with nothing in its session to lose (an empty cart)"},
    ]  # fmt: skip
    [note] = server_notes(result)
    assert note.startswith("2 of the 3 users pinned to app2 kept their session: user2: made no")
