"""User errors: one line on stderr saying what to do, exit code 2, nothing left running."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest

from sessions_lab.cluster.network import free_port
from tests.cluster.lab import cli, leftover_processes

pytestmark = pytest.mark.cluster


def assert_user_error(done, says: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert says in done.stderr


def test_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = cli(tmp_path / "lab", "up", "--mode", "cookie", "--port", str(port), check=False)
    assert_user_error(done, f"port {port} is in use")
    assert not (tmp_path / "lab" / "state.json").exists()


def test_missing_binary_is_a_one_line_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NGINX_BIN", str(tmp_path / "no-nginx"))
    done = cli(tmp_path / "lab", "up", "--mode", "cookie", "--port", str(free_port()), check=False)
    assert_user_error(done, "NGINX_BIN")


def test_memcached_mode_without_memcached_says_how_to_install_it(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("MEMCACHED_BIN", raising=False)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # no /usr/bin/memcached
    done = cli(
        tmp_path / "lab", "up", "--mode", "memcached", "--port", str(free_port()), check=False
    )
    assert_user_error(done, "No memcached binary found: apt-get install memcached")
    assert "make system-deps" in done.stderr
    assert not (tmp_path / "lab" / "state.json").exists()


def test_affinity_outside_sticky_mode_is_refused(tmp_path: Path) -> None:
    done = cli(tmp_path / "lab", "up", "--mode", "redis", "--affinity", "ip", check=False)
    assert_user_error(done, "--affinity applies to --mode sticky only")


def test_commands_without_a_lab_say_to_run_up(tmp_path: Path) -> None:
    assert_user_error(cli(tmp_path, "kill", "app2", check=False), "sessions-lab up")
    assert_user_error(cli(tmp_path, "status", check=False), "sessions-lab up")
    done = cli(tmp_path, "down", check=False)
    assert done.returncode == 0 and "no lab was running" in done.stdout


def test_second_up_and_unknown_target_while_a_lab_runs(make_lab) -> None:
    lab = make_lab("--mode", "cookie", "--instances", "1")
    again = lab.cli("up", "--mode", "cookie", "--port", str(free_port()), check=False)
    assert_user_error(again, "already running")
    assert_user_error(lab.cli("kill", "app9", check=False), "unknown target 'app9'")
    assert_user_error(lab.cli("drain", "app1", check=False), "last instance")
    assert lab.process("app1")["status"] == "running"  # the failed commands changed nothing
    assert os.path.exists(lab.run_dir / "secrets.json")


def test_a_failed_up_shows_the_log_tail_and_leaves_nothing_running(
    tmp_path: Path, monkeypatch
) -> None:
    # Any setting the instances cannot start with will do.
    monkeypatch.setenv("DB_CONN_MAX_AGE", "not-a-number")
    run_dir = tmp_path / "lab"
    done = cli(run_dir, "up", "--mode", "cookie", "--port", str(free_port()), check=False)
    assert done.returncode == 1
    assert "Nothing was left running" in done.stderr and "not-a-number" in done.stderr
    state = json.loads((run_dir / "state.json").read_text())
    assert state["phase"] == "failed"
    assert leftover_processes(state) == []
