"""Fixtures for the dashboard's tests: a real lab and a headless Chromium, always torn down.

The lab is stopped by ``down`` and then by pid (``Lab.teardown``); the browser
by quitting its driver and then stopping the chromedriver it started.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sessions_lab.cluster.network import free_port
from tests.cluster.lab import Lab
from tests.dashboard.browser import chromium, chromium_paths


@pytest.fixture
def make_lab(tmp_path: Path) -> Iterator[Callable[..., Lab]]:
    """Start a lab with ``up`` arguments in a run folder of its own; torn down after the test."""
    labs: list[Lab] = []

    def start(*args: str) -> Lab:
        lab = Lab(tmp_path / f"lab{len(labs)}", free_port())
        labs.append(lab)
        lab.up(*args)
        return lab

    yield start
    for lab in labs:
        lab.teardown()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Debian's headless Chromium, driven by selenium."""
    pytest.importorskip("selenium")
    if chromium_paths() is None:
        pytest.skip("needs Debian's chromium and chromium-driver")
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver
