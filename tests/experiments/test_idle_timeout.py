"""idle-timeout: every third shopper pauses for twice --session-idle and is logged out on its
return, in every mode, each the way it can enforce it; nobody who kept shopping is."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessions_lab.experiments.results import pauses
from sessions_lab.experiments.scenarios import RunOptions, get_scenario
from sessions_lab.modes import MODE_NAMES
from tests.cluster.lab import cli

IDLE_TIMEOUT = ("--scenario", "idle-timeout", "--session-idle", "5", "--users", "9")


def shopper(paused: bool, lost: bool, kind: str = "session") -> dict:
    return {"kind": kind, "paused_at": 1.0 if paused else None, "lost": lost}


def test_pauses_count_the_paused_and_the_active_shoppers_who_lost_their_login() -> None:
    users = [
        shopper(paused=True, lost=True),
        shopper(paused=True, lost=False),
        shopper(paused=False, lost=True, kind="jwt"),
        shopper(paused=False, lost=False),
        shopper(paused=False, lost=True, kind="anonymous"),  # no login to lose
    ]
    assert pauses(users) == {
        "users_paused": 2,
        "users_paused_logged_out": 1,
        "users_active_logged_out": 1,
    }


@pytest.mark.parametrize("mode", MODE_NAMES)
def test_every_mode_predicts_exactly_the_paused_shoppers_out(mode: str) -> None:
    scenario = get_scenario("idle-timeout")
    expectation = scenario.expectation(mode, session_idle=5)
    assert "pauses for 10 s, past the 5 s idle limit" in expectation.text
    assert scenario.load(RunOptions(session_idle=5)) == ("--idle-pause", "10")
    assert scenario.refusal(RunOptions(session_idle=5)) is None
    assert "--session-idle" in scenario.refusal(RunOptions())
    right = {"users_paused": 3, "users_paused_logged_out": 3, "users_active_logged_out": 0}
    assert expectation.holds(right)
    assert not expectation.holds({**right, "users_paused_logged_out": 2})
    assert not expectation.holds({**right, "users_active_logged_out": 1})
    assert not expectation.holds({**right, "users_paused": 0, "users_paused_logged_out": 0})


@pytest.mark.cluster
def test_without_an_idle_limit_the_scenario_is_a_cli_error(tmp_path: Path) -> None:
    done = cli(tmp_path / "lab", "experiment", "--modes", "redis", "--scenario", "idle-timeout",
               "--out", str(tmp_path / "out"), check=False)  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert (
        done.stderr.strip()
        == "sessions-lab: idle-timeout needs --session-idle S (the workshop uses 5)"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.cluster
@pytest.mark.parametrize("value", ["0", "-5", "five", "2.5"])
def test_a_timeout_that_is_not_a_positive_number_is_a_cli_error(tmp_path: Path, value: str) -> None:
    done = cli(tmp_path / "lab", "up", "--mode", "redis", "--session-idle", value, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"--session-idle: {value!r} is not a whole number of seconds, 1 or more" in done.stderr
    assert not (tmp_path / "lab" / "state.json").exists()
