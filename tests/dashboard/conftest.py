"""Fixtures for the dashboard's tests: a real lab and a headless Chromium, always torn down.

The lab is stopped by ``down`` and then by pid (``Lab.teardown``); the browser
by quitting its driver and then stopping the chromedriver it started.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.lab import make_lab  # noqa: F401 - the same fixture as tests/cluster
from tests.dashboard.browser import chromium, chromium_paths


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Debian's headless Chromium, driven by selenium."""
    if chromium_paths() is None:
        pytest.fail("Debian's chromium and chromium-driver are needed: `make system-deps`")
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver
