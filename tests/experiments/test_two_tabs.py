"""two-tabs: no fault, two tabs of each shopper writing at once. Predicted from the registry,
then measured for real: a cart saved whole with the session loses acknowledged updates, a cart
kept as rows per line (jwt, or --cart-store rows in any mode) loses none."""

from __future__ import annotations

import pytest

from sessions_lab.experiments.results import SCHEMA_VERSION
from sessions_lab.experiments.scenarios import get_scenario
from sessions_lab.modes import MODE_NAMES, get_mode

# As docs/workshop.md runs them: test_workshop.py reads the same runs.
TWO_TABS = ("--scenario", "two-tabs", "--users", "6", "--duration", "15")
RESULT = {"users_lost_session": 0, "updates_acknowledged": 60}


@pytest.mark.parametrize("mode", MODE_NAMES)
def test_the_prediction_follows_how_the_mode_keeps_the_cart(mode: str) -> None:
    scenario = get_scenario("two-tabs")
    assert scenario.timeline(3) == ()
    whole = scenario.expectation(mode)
    rows = scenario.expectation(mode, cart_store="rows")

    assert rows.holds({**RESULT, "lost_updates": 0})
    assert not rows.holds({**RESULT, "lost_updates": 1})
    if get_mode(mode).saves_cart_whole:
        assert "last" in whole.text and "--cart-store rows" in whole.text
        assert whole.holds({**RESULT, "lost_updates": 5})
        assert not whole.holds({**RESULT, "lost_updates": 0})
    else:
        assert whole.text == rows.text


@pytest.mark.cluster
@pytest.mark.timeout(300)
def test_sessions_saved_whole_lose_updates_and_jwt_rows_do_not(experiment) -> None:
    done, summary, out = experiment("--modes", "redis,cookie,jwt", *TWO_TABS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert summary["schema_version"] == SCHEMA_VERSION and summary["cart_store"] == "session"
    modes = summary["modes"]
    for result in modes.values():
        assert result["verdict"] == "as expected", (result["verdict_reason"], result)
        assert result["events"] == [] and result["failed_requests"] == 0
    for whole in ("redis", "cookie"):
        assert 0 < modes[whole]["lost_updates"] < modes[whole]["updates_acknowledged"]
    assert modes["jwt"]["lost_updates"] == 0 < modes["jwt"]["updates_acknowledged"]
    report = (out / "report.md").read_text()
    redis = modes["redis"]
    assert f"Two tabs: {redis['lost_updates']} of {redis['updates_acknowledged']}" in report
    assert "Fault events: none" in report


@pytest.mark.cluster
@pytest.mark.timeout(300)
def test_rows_keep_every_update_in_a_session_mode(experiment) -> None:
    done, summary, out = experiment("--modes", "redis", "--cart-store", "rows", *TWO_TABS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert summary["cart_store"] == "rows"
    redis = summary["modes"]["redis"]
    assert redis["verdict"] == "as expected", (redis["verdict_reason"], redis)
    assert redis["lost_updates"] == 0 < redis["updates_acknowledged"]
    assert "carts in database rows" in (out / "report.md").read_text()
