"""``python -m sessions_lab.bench.inprocess``: the in-process timing and profile behind the tuning log."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def run(mode: str, *args: str) -> str:
    env = {**os.environ, "SESSION_MODE": mode}
    for name in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)  # its own throwaway database and the shop's settings
    done = subprocess.run(
        [sys.executable, "-m", "sessions_lab.bench.inprocess", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.timeout(150)
@pytest.mark.parametrize("mode", ["cookie", "jwt"])
def test_it_times_each_page_of_a_logged_in_shopper(mode: str) -> None:
    figures = json.loads(run(mode, "--seconds", "0.05"))
    assert figures["mode"] == mode
    assert set(figures["us_per_request"]) == {"healthz", "cart_read", "cart_write"}
    assert all(us > 0 for us in figures["us_per_request"].values())


@pytest.mark.timeout(150)
def test_it_profiles_one_page() -> None:
    profile = run("sticky", "--profile", "cart_write", "--calls", "20", "--top", "5")
    assert "function calls" in profile
    assert "quick_cart_write" in run("sticky", "--profile", "cart_write", "--calls", "20")
