"""Scenarios, summaries and reports from recorded files: no servers needed."""

import json
from pathlib import Path

import pytest

from sessions_lab.experiments.report import html_report, markdown
from sessions_lab.experiments.results import FAILURE_CLASSES, ModeRun, summarise_mode
from sessions_lab.experiments.scenarios import SCENARIOS, get_scenario, verdict
from sessions_lab.modes import MODE_NAMES

SUMMARY_FIELDS = {
    "events", "requests", "failed_requests", "failures", "users_total", "users_lost_session",
    "users_pinned_to_faulted_instance", "users_lost_on_faulted_instance", "rps", "p50_ms",
    "p95_ms", "recovery_s", "expected", "verdict",
}  # fmt: skip


def write_run(folder: Path, users: list[dict], seconds: list[dict], requests: int = 500) -> None:
    folder.mkdir(parents=True)
    (folder / "users.jsonl").write_text("".join(json.dumps(u) + "\n" for u in users))
    (folder / "timeline.jsonl").write_text("".join(json.dumps(s) + "\n" for s in seconds))
    (folder / "locust_stats.csv").write_text(
        "Type,Name,Request Count,Failure Count,Requests/s,50%,95%\n"
        f",Aggregated,{requests},3,41.7,12,48\n"
    )


def second(t: int, requests: int = 40, **failures: int) -> dict:
    return {
        "t": t,
        "requests": requests,
        "failures_by_class": dict.fromkeys(FAILURE_CLASSES, 0) | failures,
    }


def user(name: str, instance: str, lost: bool = False) -> dict:
    return {"user": name, "kind": "session", "first_instance": instance, "lost": lost}


KILL_APP2 = [
    {"t": 4.0, "action": "kill", "target": "app2", "signal": "KILL"},
    {"t": 7.0, "action": "start", "target": "app2"},
]


def test_kill_one_kills_app2_at_40_percent_and_starts_it_at_70() -> None:
    events = get_scenario("kill-one").timeline(3)
    assert [(e.at_seconds(40), e.action, e.target, e.signal) for e in events] == [
        (16.0, "kill", "app2", "KILL"),
        (28.0, "start", "app2", None),
    ]


def test_rolling_restart_drains_each_instance_before_stopping_it() -> None:
    drained = [(e.action, e.target) for e in get_scenario("rolling-restart").timeline(3)]
    assert drained[:3] == [("drain", "app1"), ("kill", "app1"), ("start", "app1")]
    assert {t for a, t in drained} == {"app1", "app2", "app3"}
    assert "drain" not in {e.action for e in get_scenario("rolling-restart-nodrain").timeline(3)}


def test_store_restart_targets_each_mode_s_own_store_or_does_not_apply() -> None:
    scenario = get_scenario("store-restart")
    assert scenario.timeline(3, "redis")[0].target == "redis"
    assert scenario.expectation("sticky") is None
    assert scenario.expectation("cookie") is None
    assert scenario.expectation("db", "sqlite") is None
    assert scenario.expectation("db", "postgres") is not None
    assert "every logged-in user" in scenario.expectation("redis", "sqlite", "none").text


def test_every_scenario_predicts_something_for_every_mode_or_says_not_applicable() -> None:
    for scenario in SCENARIOS.values():
        for mode in MODE_NAMES:
            expectation = scenario.expectation(mode, "postgres", "none")
            assert expectation is None or expectation.text


def test_unknown_scenario_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="kill-one, rolling-restart"):
        get_scenario("nope")


def test_summary_counts_who_lost_and_where(tmp_path: Path) -> None:
    users = [
        user("user1", "app1"),
        user("user2", "app2", lost=True),
        user("user3", "app2", lost=True),
        user("user4", "app3"),
    ]
    seconds = [second(t) for t in range(10)]
    seconds[4] = second(4, logged_out=2, http_5xx=1)
    seconds[6] = second(6, cart_mismatch=1, connection=2)
    write_run(tmp_path / "sticky", users, seconds)
    run = ModeRun(tmp_path / "sticky", KILL_APP2, pinned=True, started_at=0)
    scenario = get_scenario("kill-one")
    result = summarise_mode(run, "x", lambda r: verdict(scenario, "sticky", r, "sqlite", "none"))
    assert set(result) >= SUMMARY_FIELDS
    assert result["failures"] == {
        "logged_out": 2,
        "cart_mismatch": 1,
        "csrf": 0,
        "http_5xx": 1,
        "connection": 2,
    }
    assert result["failed_requests"] == 3  # 5xx and connection errors; session checks apart
    assert result["users_total"] == 4
    assert result["users_lost_session"] == 2
    assert result["users_pinned_to_faulted_instance"] == 2
    assert result["users_lost_on_faulted_instance"] == 2
    assert result["recovery_s"] == 3.0  # kill at 4 s, last failure in the second 6..7
    # The pinned users lost theirs, as predicted; but kill-one also predicts
    # that no request fails (nginx re-sends what app2 never answered).
    assert result["verdict"] == "unexpected"
    assert result["verdict_reason"].startswith("the prediction did not hold: ")
    assert (result["requests"], result["p50_ms"], result["p95_ms"]) == (500, 12, 48)


def test_a_shared_state_mode_that_loses_sessions_is_unexpected(tmp_path: Path) -> None:
    write_run(tmp_path / "redis", [user("user1", "app1", lost=True)], [second(0)])
    run = ModeRun(tmp_path / "redis", KILL_APP2, pinned=False, started_at=0)
    scenario = get_scenario("kill-one")
    result = summarise_mode(run, "x", lambda r: verdict(scenario, "redis", r, "sqlite", "none"))
    assert result["users_pinned_to_faulted_instance"] is None
    assert result["users_lost_on_faulted_instance"] is None
    assert result["verdict"] == "unexpected"


def test_reports_show_the_table_charts_and_fault_events(tmp_path: Path) -> None:
    write_run(
        tmp_path / "sticky",
        [user("user1", "app2", lost=True)],
        [second(t, logged_out=t % 2) for t in range(10)],
    )
    run = ModeRun(tmp_path / "sticky", KILL_APP2, pinned=True, started_at=0)
    result = summarise_mode(run, "pinned users lose", lambda r: "as expected")
    summary = {
        "scenario": "kill-one", "instances": 3, "users": 1, "duration_s": 10, "affinity": "cookie",
        "db": "sqlite", "redis_persistence": "none", "modes": {"sticky": result},
    }  # fmt: skip
    text = markdown(summary)
    assert "| sticky | 500 | 0 | 1 of 1 | 1 |" in text
    page = html_report(summary, tmp_path)
    assert page.count("<svg") >= 3
    assert "kill app2 KILL" in page
    assert "<script" not in page and "http" not in page.replace("http_5xx", "").replace(
        "HTTP 5xx", ""
    )


def test_a_run_that_made_no_requests_is_an_error(tmp_path: Path) -> None:
    from sessions_lab.experiments.runner import ExperimentError, check_measured

    write_run(tmp_path / "db", [], [], requests=0)
    with pytest.raises(ExperimentError, match="Locust made no requests in db mode"):
        check_measured(ModeRun(tmp_path / "db", [], pinned=False, started_at=0), "db")
    (tmp_path / "db" / "locust_stats.csv").unlink()  # Locust died before writing anything
    with pytest.raises(ExperimentError):
        check_measured(ModeRun(tmp_path / "db", [], pinned=False, started_at=0), "db")


def test_the_summary_counts_locust_s_totals_at_quit_and_its_csv_only_for_a_run_cut_short(
    tmp_path: Path,
) -> None:
    from sessions_lab.experiments.load import TOTALS_FILE, locust_totals

    write_run(tmp_path / "db", [], [second(0)], requests=500)  # the CSV: a second behind
    assert locust_totals(tmp_path / "db") == {
        "requests": 500,
        "rps": 41.7,
        "p50_ms": 12,
        "p95_ms": 48,
    }
    totals = {"requests": 531, "failures": 3, "rps": 42.4, "p50_ms": 12, "p95_ms": 49}
    (tmp_path / "db" / TOTALS_FILE).write_text(json.dumps(totals))
    run = ModeRun(tmp_path / "db", [], pinned=False, started_at=0)
    result = summarise_mode(run, "…", lambda _result: "as expected")
    assert (result["requests"], result["rps"], result["p95_ms"]) == (531, 42.4, 49)


def test_fault_events_are_placed_on_the_load_s_clock(tmp_path: Path) -> None:
    seconds = [second(t) | {"at": 1000.0 + 1.5 + t} for t in range(10)]  # Locust booted 1.5 s late
    write_run(tmp_path / "db", [user("user1", "app1")], seconds)
    events = [{"t": 6.0, "at": 1006.0, "action": "kill", "target": "app2", "signal": "KILL"}]
    result = summarise_mode(
        ModeRun(tmp_path / "db", events, pinned=False, started_at=1000.0), "x", lambda r: ""
    )
    assert result["events"][0]["t"] == 4.5


def summary_of(*modes: str) -> dict:
    return {
        "scenario": "kill-one", "instances": 3, "users": 6, "duration_s": 15,
        "affinity": "cookie", "db": "sqlite", "redis_persistence": "none",
        "modes": {mode: {} for mode in modes},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("modes", "says_affinity", "says_persistence"),
    [
        (("sticky", "redis"), True, True),
        (("redis", "db"), False, True),
        (("db", "cookie", "jwt"), False, False),
        (("sticky",), True, False),
    ],
)
def test_the_headline_names_affinity_and_persistence_only_where_a_mode_uses_them(
    modes: tuple[str, ...], says_affinity: bool, says_persistence: bool
) -> None:
    from sessions_lab.experiments.report import headline

    line = headline(summary_of(*modes))
    assert ("affinity cookie" in line) is says_affinity
    assert ("Redis persistence none" in line) is says_persistence
    assert "sqlite" in line


def test_each_mode_keeps_only_the_log_lines_its_own_run_wrote(tmp_path: Path) -> None:
    from sessions_lab.experiments.runner import Experiment, log_sizes

    logs = tmp_path / "run" / "logs"
    logs.mkdir(parents=True)
    (logs / "app1.log").write_text("an earlier run\n")
    marks = log_sizes(logs)
    with (logs / "app1.log").open("a") as log:
        log.write("this run\n")
    (logs / "nginx.log").write_text("new this run\n")

    class Driver:
        run = type("Run", (), {"logs": logs})()

        def collect_logs(self) -> Path:
            return logs

    (tmp_path / "mode").mkdir()
    Experiment._keep_logs(None, Driver(), tmp_path / "mode", marks)  # type: ignore[arg-type]
    assert (tmp_path / "mode" / "logs" / "app1.log").read_text() == "this run\n"
    assert (tmp_path / "mode" / "logs" / "nginx.log").read_text() == "new this run\n"


def test_the_load_clock_starts_when_the_first_timeline_second_says(tmp_path: Path) -> None:
    from sessions_lab.experiments.load import load_origin

    timeline = tmp_path / "timeline.jsonl"
    assert load_origin(timeline) is None  # Locust has not booted yet
    timeline.write_text("")
    assert load_origin(timeline) is None
    timeline.write_text('{"t": 0, "at": 1000.5, "requests": 3}\n{"t": 1, "at": 1001.5}\n')
    assert load_origin(timeline) == 1000.5


def test_the_table_shows_two_tabs_and_pauses_only_where_a_mode_measured_them(
    tmp_path: Path,
) -> None:
    users = [
        user("user1", "app1") | {"updates_acknowledged": 12, "lost_updates": 4},
        user("user2", "app2")
        | {"paused_at": 5.0, "paused_s": 10.0, "lost": True, "first_loss_at": 16.0},
    ]
    write_run(tmp_path / "redis", users, [second(t) for t in range(5)])
    result = summarise_mode(ModeRun(tmp_path / "redis", [], False, 0), "x", lambda r: "")
    assert (result["updates_acknowledged"], result["lost_updates"]) == (12, 4)
    assert (result["users_paused"], result["users_paused_logged_out"]) == (1, 1)
    summary = summary_of("redis") | {"modes": {"redis": result}}
    text = markdown(summary)
    assert "| cart updates lost / acknowledged (two tabs) | paused shoppers" in text
    assert "| 4 / 12 | 1 / 1; 0 |" in text
    assert "Two tabs: 4 of 12 cart updates" in text

    plain = summary_of("redis") | {
        "modes": {"redis": result | {"updates_acknowledged": 0, "users_paused": 0}}
    }
    assert "two tabs" not in markdown(plain) and "paused" not in markdown(plain)
