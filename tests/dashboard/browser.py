"""Headless Chromium for the dashboard's tests and screenshots, and paced load for nginx.

Debian's ``chromium`` driven through Debian's ``chromedriver`` by selenium:
both paths are given, so selenium has nothing to download (it could not,
here). The browser and its driver are always stopped, whatever happened.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def chromium_paths() -> tuple[str, str] | None:
    """Chromium's and chromedriver's paths, or None when either is missing."""
    chromium = shutil.which("chromium") or CHROMIUM
    chromedriver = shutil.which("chromedriver") or CHROMEDRIVER
    if Path(chromium).exists() and Path(chromedriver).exists():
        return chromium, chromedriver
    return None


@contextlib.contextmanager
def chromium(profile: Path, size: tuple[int, int] = (1600, 1000)) -> Iterator[Any]:
    """A selenium driver of a fresh headless Chromium profile in ``profile``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = chromium_paths()
    if paths is None:
        raise RuntimeError("needs Debian's chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={size[0]},{size[1]}",
    ):
        options.add_argument(flag)
    service = Service(paths[1], log_output=str(profile.parent / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            service.stop()


class BackgroundLoad:
    """GET requests to nginx from a thread, so the dashboard has rates to show.

    Paced (``rate`` per second, one at a time) and bounded both in count and
    in time, so a failing test cannot leave it hammering the machine.
    """

    def __init__(
        self, url: str, rate: float = 40.0, max_requests: int = 8000, max_seconds: float = 100.0
    ) -> None:
        self.url = url
        self.interval = 1.0 / rate
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.sent = 0
        self.started = 0.0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="load", daemon=True)

    def _run(self) -> None:
        deadline = self.started + self.max_seconds
        with requests.Session() as http:
            while (
                not self.stopping.is_set()
                and self.sent < self.max_requests
                and time.monotonic() < deadline
            ):
                with contextlib.suppress(requests.RequestException):
                    # An instance dying mid-request is what the tests are about.
                    http.get(self.url, timeout=5)
                self.sent += 1
                self.stopping.wait(self.interval)  # pacing, not synchronisation

    def running_for(self) -> float:
        return time.monotonic() - self.started

    def __enter__(self) -> BackgroundLoad:
        self.started = time.monotonic()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(10)
