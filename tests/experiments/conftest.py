"""Experiments against real clusters: run the CLI as a user would, clean up whatever happens."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sessions_lab.cluster.network import free_port
from sessions_lab.paths import PROJECT_ROOT
from tests.cluster.lab import Lab


def run_experiment(
    tmp: Path, *args: str, timeout: float = 400
) -> tuple[subprocess.CompletedProcess, dict[str, Any], Path]:
    """``sessions-lab experiment ARGS`` in its own run folder and port; returns (process, summary, out)."""
    out = tmp / "results"
    run_dir = tmp / "lab"
    port = free_port()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "sessions_lab.cli", "experiment", *args,
             "--out", str(out), "--run-dir", str(run_dir), "--port", str(port)],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    finally:
        Lab(run_dir, port).teardown()  # nothing may outlive the test, even on a timeout
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return done, summary, out


def options(args: tuple[str, ...]) -> frozenset[tuple[str, str]]:
    """``--name value`` pairs (a flag: value ""), in any order: the same run however written."""
    pairs, index = [], 0
    while index < len(args):
        name = args[index]
        value = (
            args[index + 1]
            if index + 1 < len(args) and not args[index + 1].startswith("--")
            else ""
        )
        pairs.append((name, value))
        index += 2 if value else 1
    return frozenset(pairs)


@pytest.fixture(scope="session")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., tuple]]:
    """Run an experiment once per set of options and test session: the workshop guide's
    commands and the tests here that ask for the same run read one run."""
    runs: dict[frozenset[tuple[str, str]], tuple] = {}

    def run(*args: str) -> tuple:
        key = options(args)
        if key not in runs:
            runs[key] = run_experiment(tmp_path_factory.mktemp("experiment"), *args)
        return runs[key]

    yield run
