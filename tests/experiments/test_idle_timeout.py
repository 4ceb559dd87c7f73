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


def shopper(paused_at: float | None, lost_at: float | None, kind: str = "session") -> dict:
    return {
        "kind": kind,
        "paused_at": paused_at,
        "lost": lost_at is not None,
        "first_loss_at": lost_at,
    }


def test_pauses_count_the_paused_and_the_active_shoppers_who_lost_their_login() -> None:
    users = [
        shopper(paused_at=10.0, lost_at=25.0),  # out on its return: the idle logout
        shopper(paused_at=10.0, lost_at=None),  # paused, yet still logged in
        shopper(paused_at=10.0, lost_at=4.0),  # lost its login before it paused
        shopper(paused_at=None, lost_at=12.0, kind="jwt"),  # lost it while shopping
        shopper(paused_at=None, lost_at=None),
        shopper(paused_at=None, lost_at=3.0, kind="anonymous"),  # no login to lose
    ]
    assert pauses(users) == {
        "users_paused": 3,
        "users_paused_logged_out": 1,
        "users_active_logged_out": 2,
    }


def test_a_run_too_short_for_the_pause_to_end_is_refused() -> None:
    scenario = get_scenario("idle-timeout")
    assert scenario.refusal(RunOptions(session_idle=5, duration_s=30)) is None
    refusal = scenario.refusal(RunOptions(session_idle=20, duration_s=40))
    assert refusal == (
        "idle-timeout with --session-idle 20 needs --duration 60 or more: "
        "the shoppers who pause for 40 s must come back before the end"
    )


def test_two_tabs_refuses_conditional_writes() -> None:
    scenario = get_scenario("two-tabs")
    assert scenario.refusal(RunOptions()) is None
    assert "--conditional-writes" in scenario.refusal(RunOptions(conditional_writes=True))


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
