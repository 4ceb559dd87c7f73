"""Take the workshop guide's dashboard screenshots at the guide's own steps.

    .venv/bin/python -m tests.dashboard.screenshots docs/screenshots

The guide's first step: ``up --mode sticky --instances 3`` on port 8080, a
participant logs in as ``demo`` and fills a cart, and opens the dashboard
(``dashboard.png``). Its second: the participant kills the instance it is
on and reloads (``dashboard-killed.png``). The lab runs in a folder of its own and is torn
down afterwards. Not a test: a tool kept beside the tests that share its
browser set-up. Port 8080 must be free (it is what the guide shows).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from sessions_lab.cluster.network import port_is_free
from tests.cluster.lab import Lab, Shopper
from tests.dashboard.browser import chromium

PORT = 8080  # the guide's
SIZE = (1600, 900)  # 16:9, what a projector shows


def dashboard_state(run_dir: Path) -> dict[str, Any] | None:
    try:
        url = json.loads((run_dir / "state.json").read_text())["dashboard_url"]
        return requests.get(f"{url}api/state", timeout=3).json()
    except (OSError, ValueError, KeyError, TypeError, requests.RequestException):
        return None


def wait_for(run_dir: Path, condition: Any, timeout: float) -> None:
    """Poll the dashboard's data endpoint until ``condition(data)`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = dashboard_state(run_dir)
        if data and condition(data):
            return
        time.sleep(0.3)
    raise SystemExit(f"the dashboard never showed what was waited for within {timeout} s")


def shop_a_little(lab: Lab) -> Shopper:
    """What the guide asks of a participant: log in as demo, add something, reload a few times."""
    participant = Shopper(lab, "sticky")
    participant.login("demo")
    for product in participant.products()[:3]:
        participant.put_item(product, 1)
    reload(participant)
    return participant


def reload(participant: Shopper) -> None:
    for _ in range(10):
        participant.call("GET", "/")


def main(out: Path) -> None:
    if not port_is_free(PORT):
        raise SystemExit(f"port {PORT} is taken: stop what runs there (sessions-lab down?)")
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dashboard-screenshots-"))
    lab = Lab(work / "run", PORT)
    try:
        lab.cli("up", "--mode", "sticky", "--instances", "3", "--port", str(PORT))
        url = json.loads((lab.run_dir / "state.json").read_text())["dashboard_url"]
        with chromium(work / "chromium-profile", SIZE) as browser:
            # The page's own size, whatever the headless window's frame takes.
            browser.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": SIZE[0], "height": SIZE[1], "deviceScaleFactor": 1, "mobile": False},
            )
            browser.get(url)
            participant = shop_a_little(lab)
            wait_for(lab.run_dir, lambda data: data["traffic"]["requests"] >= 10, 20)
            time.sleep(1.2)  # one more poll of the page, so it shows what the endpoint just did
            browser.save_screenshot(str(out / "dashboard.png"))
            # "Kill the instance *you* are on, from the dashboard, and reload."
            mine = participant.served_by[-1]
            lab.cli("kill", mine)
            reload(participant)
            wait_for(lab.run_dir, lambda data: _status(data, mine) == "killed", 20)
            time.sleep(1.2)
            browser.save_screenshot(str(out / "dashboard-killed.png"))
    finally:
        lab.teardown()
    print(f"wrote {out / 'dashboard.png'} and {out / 'dashboard-killed.png'} (run in {work})")


def _status(data: dict[str, Any], name: str) -> str:
    return next((p["state"] for p in data.get("processes", []) if p.get("name") == name), "")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
