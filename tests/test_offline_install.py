"""The workshop guide's install for a room without internet: `make wheelhouse` on a connected
machine, then `make install WHEELHOUSE=wheelhouse` with no index at all.

Run in a copy of the project's tracked files, so neither this checkout's
``.venv`` nor a ``wheelhouse/`` of its own is touched or relied on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sessions_lab.paths import PROJECT_ROOT

pytestmark = pytest.mark.cluster


def tracked_copy(target: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=PROJECT_ROOT, capture_output=True, check=True
    )
    for name in listed.stdout.decode().split("\0"):
        if name and (PROJECT_ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / name, target / name)
    return target


def make(project: Path, *args: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(
        ["make", *args], cwd=project, capture_output=True, text=True, timeout=600,
        env={**os.environ, **(env or {})}, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (args, done.stdout[-3000:], done.stderr[-3000:])


@pytest.mark.timeout(900)
def test_a_wheelhouse_installs_the_lab_with_no_index(tmp_path: Path) -> None:
    project = tracked_copy(tmp_path / "project")
    make(project, "wheelhouse")
    assert any((project / "wheelhouse").glob("Django-5.2*.whl")) or any(
        (project / "wheelhouse").glob("django-5.2*.whl")
    )
    # An index that cannot answer: any download attempt fails the install.
    offline = {"PIP_INDEX_URL": "http://127.0.0.1:9/simple"}
    make(project, "install", "WHEELHOUSE=wheelhouse", env=offline)
    doctor = subprocess.run(
        [str(project / ".venv" / "bin" / "sessions-lab"), "doctor"],
        cwd=project, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert {"nginx", "redis", "postgres"} <= {
        line.split()[0] for line in doctor.stdout.splitlines() if line.strip()
    }
