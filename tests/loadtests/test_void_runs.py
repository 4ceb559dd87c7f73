"""Runs that measured nothing must not pass, and no answer at all is no session loss."""

from __future__ import annotations

from pathlib import Path

from loadtests.records import VOID_RUN_EXIT_CODE
from tests.loadtests.locust_runs import run_locust
from tests.loadtests.shop_server import free_port


def nowhere() -> str:
    """A loopback address where nothing listens: every connection is refused."""
    return f"http://127.0.0.1:{free_port()}"


def test_a_refused_connection_is_counted_as_connection_not_as_session_loss(tmp_path: Path) -> None:
    run = run_locust(nowhere(), tmp_path, duration="3s")

    assert run.returncode == VOID_RUN_EXIT_CODE, run.log
    failures = run.failures()
    assert failures["connection"] == run.requests() > 0
    assert {row["Error"] for row in run.failure_rows()} == {"CatchResponseError('connection')"}
    for record in run.users:
        assert record["lost"] is False, record
        assert record["losses"]["connection"] > 0, record
        assert record["instances"] == {}, record


def test_a_run_without_a_single_request_exits_with_an_error(tmp_path: Path) -> None:
    run = run_locust(nowhere(), tmp_path, users=0, duration="2s")

    assert run.returncode == VOID_RUN_EXIT_CODE, run.log
    assert run.requests() == 0
    assert run.users == []
    assert "No request got an HTTP answer" in run.log
