"""Take the workshop guide's dashboard screenshots from a real run.

    .venv/bin/python -m tests.dashboard.screenshots docs/screenshots

Runs a short sticky ``kill-one`` experiment (the one a workshop starts with)
and photographs its dashboard in headless Chromium twice: traffic spread
over three instances before the kill (``dashboard.png``), and app2 killed
with the sessions of its users lost (``dashboard-killed.png``). The moments
are chosen from the dashboard's own data endpoint. Not a test: a tool kept
beside the tests that share its browser set-up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from sessions_lab.cluster.network import free_port
from sessions_lab.paths import PROJECT_ROOT
from tests.cluster.lab import Lab
from tests.dashboard.browser import chromium

DURATION_S = 30
SIZE = (1600, 900)  # 16:9, what a projector shows


def dashboard_state(run_dir: Path) -> dict[str, Any] | None:
    try:
        url = json.loads((run_dir / "state.json").read_text())["dashboard_url"]
        return requests.get(f"{url}api/state", timeout=3).json()
    except (OSError, ValueError, KeyError, TypeError, requests.RequestException):
        return None


def wait_for(run_dir: Path, condition: Callable[[dict[str, Any]], bool], timeout: float) -> str:
    """Poll the data endpoint until ``condition`` holds; return the dashboard's URL."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = dashboard_state(run_dir)
        if data and data.get("experiment") and condition(data):
            return json.loads((run_dir / "state.json").read_text())["dashboard_url"]
        time.sleep(0.3)
    raise SystemExit(f"the dashboard never showed what was waited for within {timeout} s")


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dashboard-screenshots-"))
    run_dir, port = work / "run", free_port()
    command = [
        sys.executable, "-m", "sessions_lab.cli", "experiment", "--modes", "sticky",
        "--scenario", "kill-one", "--users", "12", "--duration", str(DURATION_S),
        "--port", str(port), "--run-dir", str(run_dir), "--out", str(work / "results"),
    ]  # fmt: skip
    with (work / "experiment.log").open("wb") as log:
        experiment = subprocess.Popen(
            command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        with chromium(work / "chromium-profile", SIZE) as browser:
            # The page's own size, whatever the headless window's frame takes.
            browser.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": SIZE[0], "height": SIZE[1], "deviceScaleFactor": 1, "mobile": False},
            )
            url = wait_for(run_dir, lambda d: d["experiment"]["elapsed_s"] >= 9, 90)
            browser.get(url)
            wait_for(run_dir, lambda d: d["experiment"]["elapsed_s"] >= 10.5, 30)
            browser.save_screenshot(str(out / "dashboard.png"))

            def after_losses(data: dict[str, Any]) -> bool:
                live = data["experiment"]
                return live["session_losses"] >= 2 and live["elapsed_s"] >= 0.4 * DURATION_S + 4

            wait_for(run_dir, after_losses, 40)
            time.sleep(1.2)  # one more poll of the page, so it shows what the endpoint just did
            browser.save_screenshot(str(out / "dashboard-killed.png"))
        experiment.wait(timeout=DURATION_S + 60)
    finally:
        if experiment.poll() is None:
            os.killpg(experiment.pid, signal.SIGINT)
            experiment.wait(timeout=30)
        Lab(run_dir, port).teardown()
    print(f"wrote {out / 'dashboard.png'} and {out / 'dashboard-killed.png'} (run in {work})")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
