"""docs/workshop.md's marked commands (up, kill, start, a short experiment, down) work as written."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sessions_lab.cluster.network import free_port
from sessions_lab.paths import PROJECT_ROOT
from tests.cluster.lab import Lab

pytestmark = pytest.mark.cluster

WORKSHOP = PROJECT_ROOT / "docs" / "workshop.md"
TESTED_BLOCK = re.compile(r"<!-- tested -->\s*```sh\n(.*?)```", re.DOTALL)


def workshop_commands() -> list[list[str]]:
    commands = []
    for block in TESTED_BLOCK.findall(WORKSHOP.read_text()):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                commands.append(shlex.split(line))
    return commands


def test_the_workshop_marks_the_commands_a_session_starts_with() -> None:
    verbs = [command[1] for command in workshop_commands()]
    assert {"up", "kill", "start", "experiment", "down"} <= set(verbs)
    assert all(command[0] == ".venv/bin/sessions-lab" for command in workshop_commands())


@pytest.mark.timeout(300)
def test_the_workshop_commands_run_as_written(tmp_path: Path) -> None:
    run_dir, port = tmp_path / "lab", free_port()
    try:
        for command in workshop_commands():
            verb, args = command[1], command[2:]
            # The doc's commands as written, in a run folder and on a port of the test's own.
            extra = ["--run-dir", str(run_dir)]
            if verb in ("up", "experiment"):
                extra += ["--port", str(port)]
            if verb == "experiment":
                extra += ["--out", str(tmp_path / "results")]
            done = subprocess.run(
                [sys.executable, "-m", "sessions_lab.cli", verb, *args, *extra],
                cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240, check=False,
            )  # fmt: skip
            assert done.returncode == 0, (command, done.stdout, done.stderr)
    finally:
        Lab(run_dir, port).teardown()
    assert (tmp_path / "results" / "report.html").is_file()
