"""A stand-in for a command-line tool a driver runs (docker, kubectl), first on the PATH.

The drivers are judged by the command lines they would give the real tool;
each fake records its arguments as JSON lines and answers from a script.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest


def install_fake(folder: Path, name: str, script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``script`` as program ``name``, found before anything else (.venv/bin's real one too)."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    program = bin_dir / name
    program.write_text(script)
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")


def recorded_calls(log: Path) -> list[list[str]]:
    """Every call's arguments the fake wrote to ``log``, in order; clears the record."""
    if not log.exists():
        return []
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    log.unlink()
    return calls
