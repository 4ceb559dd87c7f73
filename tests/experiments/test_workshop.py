"""docs/workshop.md, run as a participant would: every command in it, and every outcome it claims.

Every ```sh box of the guide is marked ``<!-- tested -->`` and run here, as
written, in order, in a run folder and on a port of the test's own. The
outcomes the guide promises are the checks below, one function each; the
guide's last table names them (claim → command → check), and a test keeps
the table and this file in step. Experiments run through the session's
``experiment`` fixture, so a test elsewhere that asks for the same run reads
the same results.

Three of the guide's commands are long; they run here shortened, the same
command with smaller figures: ``make demo`` (as ``test_kill_one`` runs it),
``bench`` (as ``test_bench`` runs it). ``make wheelhouse`` and the offline
``make install`` run in ``tests/test_offline_install.py``, in a copy of the
project.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from sessions_lab.cluster.network import free_port
from sessions_lab.experiments.server_logs import access_lines, late_write_lines, was_resent
from sessions_lab.modes import MODE_NAMES
from sessions_lab.paths import PROJECT_ROOT
from sessions_lab.waiting import wait_until
from tests.cluster.lab import Lab, Shopper
from tests.cluster.test_bench import SHORT_BENCH
from tests.experiments.conftest import options
from tests.experiments.test_kill_one import SHORT_KILL_ONE

pytestmark = pytest.mark.cluster

GUIDE = PROJECT_ROOT / "docs" / "workshop.md"
BOX = re.compile(r"(<!-- tested -->\s*)?```sh\n(.*?)```", re.DOTALL)
BIN = ".venv/bin/sessions-lab"


def boxes() -> list[tuple[bool, list[str]]]:
    """Each ```sh box: whether it is marked tested, and its command lines."""
    found = []
    for marker, body in BOX.findall(GUIDE.read_text()):
        lines = [line.split("#", 1)[0].strip() for line in body.splitlines()]
        found.append((bool(marker), [line for line in lines if line]))
    return found


def commands() -> list[str]:
    return [line for _, lines in boxes() for line in lines]


def lab_command(line: str) -> bool:
    return line.startswith(BIN) and shlex.split(line)[1] not in ("experiment", "bench")


def experiment_args(line: str) -> tuple[str, ...]:
    return tuple(shlex.split(line)[2:])


# ------------------------------------------------------------------ the claims


@dataclass
class Seen:
    """What a check can look at: the lab (its URL) and what the command printed."""

    lab: Lab
    stdout: str = ""
    remembered: dict[str, Any] = field(default_factory=dict)  # between two commands


def same_instance_on_reload(seen: Seen) -> None:
    browser = requests.Session()
    served = {browser.get(seen.lab.url + "/", timeout=10).headers["X-Served-By"] for _ in range(10)}
    assert len(served) == 1, served


def route_in_the_url_picks_the_instance(seen: Seen) -> None:
    for _ in range(3):
        answer = requests.get(seen.lab.url + "/?route=app2", timeout=10)
        assert answer.headers["X-Served-By"] == "app2"


def logged_in_before_the_outage(seen: Seen) -> None:
    shopper = Shopper(seen.lab, "redis")
    shopper.login("user2")
    seen.remembered["redis shopper"] = shopper


def store_down_503_catalog_200(seen: Seen) -> None:
    shopper: Shopper = seen.remembered.pop("redis shopper")
    for _ in range(4):  # more than the instances: none is taken out of rotation
        answer = shopper.call("GET", "/api/cart/")
        assert answer.status_code == 503, answer.text
        assert "session store" in answer.json()["detail"].lower()
        assert requests.get(seen.lab.url + "/api/products/", timeout=10).status_code == 200


def logged_in_before_the_pause(seen: Seen) -> None:
    shopper = Shopper(seen.lab, "cached_db")
    shopper.login("user1")
    seen.remembered["shopper"] = shopper


def logout_refused_while_redis_paused(seen: Seen) -> None:
    shopper: Shopper = seen.remembered["shopper"]
    answer = shopper.call("POST", "/api/session/logout/")
    assert answer.status_code == 503, answer.text
    assert "Could not log you out" in answer.json()["detail"]


def still_logged_in_after_the_pause(seen: Seen) -> None:
    assert seen.remembered["shopper"].whoami()["authenticated"] is True


def attack_table_as_promised(seen: Seen) -> None:
    rows = [line for line in seen.stdout.splitlines() if line.startswith("| ")]
    assert rows and not any("NOT as promised" in row for row in rows), seen.stdout
    if "| cookie |" in seen.stdout:
        assert (
            "| replay a session cookie after logout | logged in | logged in | as promised"
            in seen.stdout
        )
    else:
        assert "logged in (until exp" in seen.stdout


def cart_stops_at_the_shop_s_refusal(seen: Seen) -> None:
    refusal = re.search(r"Line ([\d,]+) was refused \((\d+)\)", seen.stdout)
    assert refusal is not None and refusal.group(2) == "400", seen.stdout
    assert 1200 < int(refusal.group(1).replace(",", "")) < 1400


def logged_in_before_the_failover(seen: Seen) -> None:
    shopper = Shopper(seen.lab, "replicated")
    shopper.login("user3")
    assert shopper.put_item(1, 2).status_code == 200
    seen.remembered["replicated shopper"] = shopper


def writes_wait_for_a_promoted_replica(seen: Seen) -> None:
    shopper: Shopper = seen.remembered.pop("replicated shopper")
    assert shopper.cart() == {1: 2}  # reads go on, from the instances' replicas
    statuses: list[int] = []

    def written() -> bool:
        statuses.append(shopper.put_item(2, 1).status_code)
        return statuses[-1] == 200

    assert wait_until(written, 20), statuses
    assert set(statuses[:-1]) <= {503}, statuses
    assert shopper.cart() == {1: 2, 2: 1}


# What the lab shows right after a command of the guide (the command's line).
def stored_as_the_lab_encrypts(seen: Seen) -> None:
    """The footer's "stored as": plain JSON, or with --encrypt-sessions a Fernet token."""
    encrypted = json.loads((seen.lab.run_dir / "lab.json").read_text())["shop"]["encrypt_sessions"]
    shopper = Shopper(seen.lab, "redis")
    shopper.login("user3")
    stored = shopper.whoami()["session"]["stored_as"]
    assert stored["encrypted"] is encrypted
    assert stored["preview"].startswith("gAAAAA") is encrypted, stored
    assert ("_auth_user_id" in stored["preview"]) is not encrypted, stored


def store_read_as_the_lab_encrypts(seen: Seen) -> None:
    """attack reads the cart out of Redis, unless the running lab encrypts sessions."""
    encrypted = json.loads((seen.lab.run_dir / "lab.json").read_text())["shop"]["encrypt_sessions"]
    [row] = [line for line in seen.stdout.splitlines() if "read the cart out of the store" in line]
    assert row.endswith("| as promised |"), seen.stdout
    assert ("| unreadable |" in row) is encrypted, row


def cookie_unreadable_when_encrypted(seen: Seen) -> None:
    [row] = [line for line in seen.stdout.splitlines() if "out of the signed cookie" in line]
    assert "| unreadable |" in row and row.endswith("| as promised |"), seen.stdout


AFTER: dict[str, list[Callable[[Seen], None]]] = {
    "up --mode sticky --instances 3": [same_instance_on_reload],
    "up --mode sticky --affinity route": [route_in_the_url_picks_the_instance],
    "up --mode redis --instances 3": [logged_in_before_the_outage],
    "kill redis": [store_down_503_catalog_200],
    "up --mode cached_db": [logged_in_before_the_pause],
    "kill redis --signal STOP": [logout_refused_while_redis_paused],
    "start redis": [],  # both guide boxes start Redis; the cached_db one is checked below
    "attack --mode cookie": [attack_table_as_promised],
    "attack --mode jwt": [attack_table_as_promised],
    "fill-cart --lines 1400": [cart_stops_at_the_shop_s_refusal],
    "up --mode replicated": [logged_in_before_the_failover],
    "kill redis-primary": [writes_wait_for_a_promoted_replica],
    "up --mode redis": [stored_as_the_lab_encrypts],
    "up --mode redis --encrypt-sessions": [stored_as_the_lab_encrypts],
    "attack": [store_read_as_the_lab_encrypts],
    "attack --mode cookie --encrypt-sessions": [cookie_unreadable_when_encrypted],
}


def modes(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return summary["modes"]


def kill_one_sticky_only_pinned_redis_nobody(summary: dict[str, Any], out: Path) -> None:
    sticky, redis = modes(summary)["sticky"], modes(summary)["redis"]
    assert sticky["users_lost_session"] == sticky["users_lost_on_faulted_instance"] > 0
    assert redis["users_lost_session"] == 0


def scale_out_takes_traffic(summary: dict[str, Any], out: Path) -> None:
    access_log = (out / "sticky" / "logs" / "nginx-access.jsonl").read_text()
    assert '"served_by":"app4"' in access_log  # some addresses now hash to the new instance


def redis_restart_logs_everybody_out_cached_db_nobody(summary: dict[str, Any], out: Path) -> None:
    redis, cached_db = modes(summary)["redis"], modes(summary)["cached_db"]
    assert redis["users_lost_session"] >= redis["users_total"] // 2
    assert cached_db["users_lost_session"] == 0


def nobody_loses(summary: dict[str, Any], out: Path) -> None:
    assert all(result["users_lost_session"] == 0 for result in modes(summary).values())


def nodrain_resends(summary: dict[str, Any], out: Path) -> None:
    redis = modes(summary)["redis"]
    assert redis["retried_requests"] > 0 and redis["users_lost_session"] == 0
    assert "nginx re-sent" in (out / "report.html").read_text()


def drain_resends_nothing(summary: dict[str, Any], out: Path) -> None:
    redis = modes(summary)["redis"]
    assert (redis["retried_requests"], redis["failed_requests"]) == (0, 0)


def late_writes_reported(summary: dict[str, Any], out: Path) -> None:
    redis, cookie = modes(summary)["redis"], modes(summary)["cookie"]
    assert redis["late_writes"], "no write was caught on the hung app2"
    for write in redis["late_writes"]:
        assert write["instance"] == "app2" and write["late_by_s"] > 5, write
    # Every write nginx gave up on (504 from app2, re-sent elsewhere) was
    # applied when app2 resumed: none dropped unanswered on a kept-alive
    # connection (gunicorn's --keep-alive outlasts the hang).
    logs = out / "redis" / "logs"
    caught = {
        record["request_id"]
        for record in access_lines(logs)
        if was_resent(record)
        and str(record["upstream_status"]).startswith("504")
        and not str(record["request"]).startswith("GET ")
    }
    late = {
        str(write.get("request_id"))
        for write in late_write_lines(logs)
        if write.get("instance") == "app2"  # not the re-sent copy, late by nginx's clock too
    }
    assert caught and caught <= late, (caught - late, caught)
    assert redis["failures"]["logged_out"] == 0
    assert "Late write at" in (out / "report.html").read_text()
    assert cookie["users_lost_session"] == 0


def conditional_writes_overwrite_nothing(summary: dict[str, Any], out: Path) -> None:
    redis = modes(summary)["redis"]
    assert summary["conditional_writes"] is True
    assert redis["users_lost_session"] == 0
    assert not any(write["overwrote"] for write in redis["late_writes"])


def lb_down_fails_alike(summary: dict[str, Any], out: Path) -> None:
    for result in modes(summary).values():
        assert result["failures"]["connection"] > 0 and result["users_lost_session"] == 0


def failover_costs_seconds_of_writes(summary: dict[str, Any], out: Path) -> None:
    replicated = modes(summary)["replicated"]
    assert replicated["verdict"] == "as expected", replicated["verdict_reason"]
    assert 0 < replicated["write_unavailable_s"] < 15 and replicated["failed_reads"] == 0
    assert "session writes failed for" in (out / "report.html").read_text()


def sync_failover_loses_nothing(summary: dict[str, Any], out: Path) -> None:
    assert summary["replication"] == "sync"
    assert modes(summary)["replicated"]["users_lost_session"] == 0


def only_the_killed_node_s_users_lose(summary: dict[str, Any], out: Path) -> None:
    memcached = modes(summary)["memcached"]
    lost = memcached["users_lost_session"]
    assert lost == memcached["users_lost_on_faulted_node"] > 0
    assert "Users by cache node" in (out / "report.html").read_text()


def two_tabs_lose_where_the_session_is_saved_whole(summary: dict[str, Any], out: Path) -> None:
    redis, cookie, jwt = (modes(summary)[name] for name in ("redis", "cookie", "jwt"))
    assert redis["lost_updates"] > 0 and cookie["lost_updates"] > 0
    assert jwt["lost_updates"] == 0 < jwt["updates_acknowledged"]
    assert "Two tabs: " in (out / "report.html").read_text()


def rows_lose_no_update(summary: dict[str, Any], out: Path) -> None:
    redis = modes(summary)["redis"]
    assert summary["cart_store"] == "rows"
    assert redis["lost_updates"] == 0 < redis["updates_acknowledged"]


def only_the_paused_are_logged_out(summary: dict[str, Any], out: Path) -> None:
    for result in modes(summary).values():
        assert result["users_paused"] > 0
        assert result["users_paused_logged_out"] == result["users_paused"]
        assert result["users_active_logged_out"] == 0
    assert "Idle limit 5 s: " in (out / "report.html").read_text()


def demo_reports_every_mode(summary: dict[str, Any], out: Path) -> None:
    assert list(modes(summary)) == list(MODE_NAMES)
    report = (out / "report.html").read_text()
    assert all(f'<section id="{mode}">' in report for mode in modes(summary))


# What an experiment of the guide must show, by its options (any order).
EXPERIMENT_CHECKS: dict[str, list[Callable[[dict[str, Any], Path], None]]] = {
    "--modes sticky,redis --scenario kill-one --users 6 --duration 15": [
        kill_one_sticky_only_pinned_redis_nobody
    ],
    "--modes sticky --affinity ip --scenario scale-out --users 6 --duration 20": [
        scale_out_takes_traffic
    ],
    "--modes redis,cached_db --scenario store-restart --users 6 --duration 15": [
        redis_restart_logs_everybody_out_cached_db_nobody
    ],
    "--modes redis --redis-persistence aof --scenario store-restart --users 6 --duration 15": [
        nobody_loses
    ],
    "--modes db --db postgres --scenario store-restart --users 6 --duration 15": [nobody_loses],
    "--modes redis --scenario rolling-restart-nodrain --users 10 --duration 24": [nodrain_resends],
    "--modes redis --scenario rolling-restart --users 10 --duration 24": [drain_resends_nothing],
    "--modes redis,cookie --scenario hang-one --users 20 --duration 24": [late_writes_reported],
    "--modes redis --scenario hang-one --conditional-writes --users 20 --duration 24": [
        conditional_writes_overwrite_nothing
    ],
    "--modes sticky,redis --scenario lb-down --users 6 --duration 20": [lb_down_fails_alike],
    "--modes replicated --scenario store-failover --users 10 --duration 25": [
        failover_costs_seconds_of_writes
    ],
    "--modes replicated --scenario store-failover --replication sync --users 10 --duration 25": [
        failover_costs_seconds_of_writes,
        sync_failover_loses_nothing,
    ],
    "--modes memcached --scenario cache-node-down --users 24 --duration 30": [
        only_the_killed_node_s_users_lose
    ],
    "--modes redis,cookie,jwt --scenario two-tabs --users 6 --duration 15": [
        two_tabs_lose_where_the_session_is_saved_whole
    ],
    "--modes redis --scenario two-tabs --cart-store rows --users 6 --duration 15": [
        rows_lose_no_update
    ],
    "--modes redis,cookie,jwt --scenario idle-timeout --session-idle 5 --users 9 --duration 30": [
        only_the_paused_are_logged_out
    ],
    " ".join(SHORT_KILL_ONE): [demo_reports_every_mode],  # make demo, shortened
}


def experiment_lines() -> list[str]:
    return [line for line in commands() if line.startswith(f"{BIN} experiment")]


def checks_for(args: tuple[str, ...]) -> list[Callable[[dict[str, Any], Path], None]]:
    for written, checks in EXPERIMENT_CHECKS.items():
        if options(tuple(written.split())) == options(args):
            return checks
    raise AssertionError(f"no check for the guide's experiment {' '.join(args)}")


# ------------------------------------------------------------------ the tests


def test_every_command_box_of_the_guide_is_run_here() -> None:
    assert boxes() and all(tested for tested, _ in boxes())
    known = (f"{BIN} ", "make install", "make wheelhouse", "make demo")
    assert all(line.startswith(known) for line in commands()), commands()


def test_the_guide_s_table_names_exactly_the_checks_made_here() -> None:
    table = GUIDE.read_text().split("## For instructors", 1)[1]
    named = set(re.findall(r"\| `([a-z0-9_']+)`(?:, `([a-z0-9_']+)`)? \|$", table, re.MULTILINE))
    names = {name for pair in named for name in pair if name}
    made = {check.__name__ for checks in AFTER.values() for check in checks}
    made |= {check.__name__ for checks in EXPERIMENT_CHECKS.values() for check in checks}
    made -= {  # steps, not claims
        "logged_in_before_the_pause",
        "logged_in_before_the_outage",
        "logged_in_before_the_failover",
    }
    assert names == made


def test_the_long_commands_run_shortened_are_the_guide_s_commands() -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    demo = re.search(r"^demo:.*\n\t\$\(BIN\)/sessions-lab experiment (.*)$", makefile, re.M)
    assert demo is not None and "make demo" in commands()
    scaled = {"--users", "--duration", "--connections"}
    assert {p for p in options(tuple(demo.group(1).split())) if p[0] not in scaled} == {
        p for p in options(SHORT_KILL_ONE) if p[0] not in scaled
    }
    [bench] = [line for line in commands() if line.startswith(f"{BIN} bench")]
    written = options(tuple(shlex.split(bench)[2:]))
    assert {p for p in written if p[0] not in scaled} == {
        p for p in options(SHORT_BENCH) if p[0] not in scaled
    }


@pytest.mark.timeout(900)
def test_the_guide_s_lab_commands_run_as_written_and_show_what_it_says(tmp_path: Path) -> None:
    run_dir, port = tmp_path / "lab", free_port()
    lab, timings = Lab(run_dir, port), []
    seen = Seen(lab)
    try:
        for line in commands():
            if line.startswith("make "):
                if line == "make install":  # already installed: a no-op, as on a second run
                    done = subprocess.run(["make", "install"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
                    assert done.returncode == 0, done.stdout + done.stderr
                continue
            if not lab_command(line):
                continue
            verb, args = shlex.split(line)[1], shlex.split(line)[2:]
            extra = ["--run-dir", str(run_dir)]
            if verb in ("up", "attack"):
                extra += ["--port", str(port)]
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "sessions_lab.cli", verb, *args, *extra],
                cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240, check=False,
            )  # fmt: skip
            timings.append((line, round(time.monotonic() - started, 1)))
            assert done.returncode == 0, (line, done.stdout, done.stderr)
            seen.stdout = done.stdout
            for check in AFTER.get(" ".join([verb, *args]), []):
                check(seen)
            if "shopper" in seen.remembered and verb == "start" and args == ["redis"]:
                still_logged_in_after_the_pause(seen)
                seen.remembered.clear()
    finally:
        lab.teardown()
        print(json.dumps(timings, indent=1))  # the guide's durations come from here (-s)


@pytest.mark.timeout(420)
@pytest.mark.parametrize(
    "line",
    [*experiment_lines(), "make demo"],
    ids=lambda line: line.removeprefix(f"{BIN} experiment "),
)
def test_the_guide_s_experiments_show_what_it_says(experiment, line: str) -> None:
    args = SHORT_KILL_ONE if line == "make demo" else experiment_args(line)
    done, summary, out = experiment(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    verdicts = {mode: result["verdict"] for mode, result in modes(summary).items()}
    assert set(verdicts.values()) <= {"as expected", "not applicable"}, (verdicts, done.stdout)
    for check in checks_for(args):
        check(summary, out)
