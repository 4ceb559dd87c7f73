"""What a run remembers per user and per second, without a server (and without Locust)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from loadtests.records import Timeline, UserRecord, write_users
from loadtests.session_checks import Failure
from tests.loadtests.shop_server import PROJECT_ROOT


def test_a_loss_is_blamed_on_the_instance_that_served_the_user_last() -> None:
    record = UserRecord(user="user3", kind="session")
    record.served("app2")
    record.pin("app2")
    record.served("app2")
    record.failed(Failure.LOGGED_OUT, t=12.3456, at=1000.0)
    record.served("app1")  # the answer that showed the loss came from the survivor
    record.failed(Failure.CONNECTION, t=13.0, at=1001.0)

    line = record.to_json()
    assert line["lost"] is True
    assert line["first_loss_t"] == 12.346
    assert line["loss_instances"] == ["app2"]
    assert line["instances"] == {"app1": 1, "app2": 2}
    assert line["first_instance"] == "app2"
    assert line["losses"] == {
        "logged_out": 1,
        "cart_mismatch": 0,
        "csrf": 0,
        "http_5xx": 0,
        "connection": 1,
    }


def test_transport_failures_alone_are_no_lost_session() -> None:
    record = UserRecord(user="user1", kind="jwt")
    record.failed(Failure.HTTP_5XX, t=1.0, at=1.0)
    record.failed(Failure.CONNECTION, t=2.0, at=2.0)
    assert record.lost is False
    assert record.to_json()["first_loss_t"] is None


def test_the_timeline_writes_each_second_once_it_is_over_gaps_included() -> None:
    out = io.StringIO()
    timeline = Timeline(started_at=100.0, out=out)
    timeline.add(100.2, None, 10.0)
    timeline.add(100.9, "logged_out", 30.0)
    timeline.add(102.5, "connection", 5.0)

    assert [line["t"] for line in timeline.flush(102.1)] == [0, 1]
    assert [line["t"] for line in timeline.flush(102.6, final=True)] == [2]

    lines = [json.loads(text) for text in out.getvalue().splitlines()]
    assert [line["requests"] for line in lines] == [2, 0, 1]
    assert lines[0]["failures_by_class"]["logged_out"] == 1
    assert lines[2]["failures_by_class"]["connection"] == 1
    assert lines[1]["at"] == 101.0
    assert lines[0]["p95_ms"] == 30.0


def test_the_checks_and_records_can_be_used_without_importing_locust() -> None:
    # Importing locust patches a process with gevent; the lab's own process reads these files.
    probe = "import sys, loadtests.records; sys.exit('locust' in sys.modules or 'gevent' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, timeout=30).returncode == 0
    )


def test_conflicts_are_written_to_the_users_file_apart_from_failures(tmp_path: Path) -> None:
    record = UserRecord(user="user2", kind="session")
    assert record.to_json()["conflicts"] == 0
    record.conflicts += 2

    write_users(tmp_path / "users.jsonl", [record])
    line = json.loads((tmp_path / "users.jsonl").read_text())
    assert line["conflicts"] == 2
    assert line["lost"] is False
    assert sum(line["losses"].values()) == line["unexpected"] == 0


def test_a_loss_is_blamed_on_the_cache_node_the_session_was_last_said_to_be_on() -> None:
    record = UserRecord(user="user4", kind="session")
    record.served("app1", node="2")
    record.served("app3", node="2")
    record.failed(Failure.LOGGED_OUT, t=20.0, at=1020.0)
    record.served("app2", node="1")  # logged in again: a new key, on another node
    record.failed(Failure.CONNECTION, t=21.0, at=1021.0)  # no session loss: no node blamed
    record.failed(Failure.CART_MISMATCH, t=22.0, at=1022.0)
    record.served("", node="")  # an answer that named no node (a 502) changes nothing

    line = record.to_json()
    assert line["nodes"] == {"1": 1, "2": 2}
    assert line["last_node"] == "1"
    assert line["loss_nodes"] == ["2", "1"]
    assert line["loss_instances"] == ["app3", "app2"]


def test_a_user_no_answer_named_a_node_for_has_none() -> None:
    record = UserRecord(user="user5", kind="session")
    record.served("app1")
    record.failed(Failure.LOGGED_OUT, t=1.0, at=1.0)
    line = record.to_json()
    assert (line["nodes"], line["last_node"], line["loss_nodes"]) == ({}, None, [""])


def test_a_login_lost_unseen_is_blamed_on_its_own_node_not_the_last_one_named() -> None:
    # Its login's session was on node 2. When node 2 died, a cart write quietly started an
    # anonymous session on node 1 (the cart it set looked right); the loss showed later.
    record = UserRecord(user="user6", kind="session")
    record.pin("app2", node="2")
    record.served("app2", node="2")
    record.served("app1", node="1")
    record.failed(Failure.LOGGED_OUT, t=21.2, at=1021.2)
    record.pin("app3", node="3")  # logged in again: a new session, on node 3
    record.served("app3", node="3")
    record.failed(Failure.CART_MISMATCH, t=30.0, at=1030.0)

    line = record.to_json()
    assert line["loss_nodes"] == ["2", "3"]
    assert line["last_node"] == "3"
    assert line["first_instance"] == "app2"
