"""Done-when 6: `down` leaves no process behind, and the run folder says how each one ended."""

from __future__ import annotations

import os
import signal

import pytest

from sessions_lab.cluster.processes import is_alive
from tests.cluster.lab import leftover_processes

pytestmark = pytest.mark.cluster


def causes(state: dict) -> dict[str, str]:
    return {p["name"]: (p["exit"] or {}).get("cause", "") for p in state["processes"]}


def test_down_stops_everything_also_a_paused_instance(make_lab) -> None:
    lab = make_lab("--mode", "redis", "--instances", "3")
    lab.cli("kill", "app1", "--signal", "KILL")
    lab.cli("kill", "app2", "--signal", "STOP")
    assert lab.process("app2")["status"] == "paused"
    running = lab.state()

    lab.cli("down")

    state = lab.state()
    assert state["phase"] == "down"
    assert leftover_processes(running) == []
    assert not is_alive(running["supervisor"]["pid"], running["supervisor"]["start_time"])
    assert causes(state) == {
        "redis": "stopped by down",
        "app1": "killed by lab: SIGKILL",
        "app2": "stopped by down",
        "app3": "stopped by down",
        "nginx": "stopped by down",
    }
    assert lab.cli("status").returncode == 0


def test_down_after_the_supervisor_died_stops_what_it_left(make_lab) -> None:
    lab = make_lab("--mode", "cookie", "--instances", "2")
    running = lab.state()
    os.kill(running["supervisor"]["pid"], signal.SIGKILL)

    done = lab.cli("down")

    assert "supervisor was gone" in done.stdout
    assert leftover_processes(running) == []
    assert set(causes(lab.state()).values()) == {"stopped by down (its supervisor was gone)"}
    again = lab.cli("up", "--mode", "cookie", "--port", str(lab.port))
    assert again.returncode == 0, again.stderr
