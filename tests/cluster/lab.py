"""A lab under test and a shopper that talks to it over real HTTP.

``Lab`` drives the real CLI in a run folder of its own; ``Shopper`` uses the
JSON API through nginx the way Locust and the contract tests do.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from sessions_lab.cluster import postgres
from sessions_lab.cluster.config import RunFolder
from sessions_lab.cluster.network import free_port
from sessions_lab.cluster.processes import group_members, is_alive, signal_group
from sessions_lab.modes import get_mode
from sessions_lab.paths import PROJECT_ROOT

DEMO_PASSWORD = "demo-password"


def cli(run_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``sessions-lab ARGS --run-dir RUN_DIR`` as a user would."""
    done = subprocess.run(
        [sys.executable, "-m", "sessions_lab.cli", *args, "--run-dir", str(run_dir)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"sessions-lab {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return done


class Lab:
    """A running cluster in its own run folder."""

    def __init__(self, run_dir: Path, port: int) -> None:
        self.run_dir = run_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return cli(self.run_dir, *args, check=check)

    def up(self, *args: str) -> None:
        self.cli("up", "--port", str(self.port), "--demo-users", "30", *args)

    def state(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "state.json").read_text())

    def process(self, name: str) -> dict[str, Any]:
        return next(p for p in self.state()["processes"] if p["name"] == name)

    def teardown(self) -> None:
        if not (self.run_dir / "state.json").exists():
            return
        cli(self.run_dir, "down", check=False)
        # Whatever `down` missed, by pid: a test must never leave a server behind.
        state = self.state()
        leftovers = [
            process
            for process in [*state["processes"], state["supervisor"]]
            if process.get("pid") and is_alive(process["pid"], process.get("start_time"))
        ]
        for process in leftovers:
            signal_group(process["pid"], signal.SIGKILL)
            signal_group(process["pid"], signal.SIGCONT)
        if state.get("db") == "postgres":
            data = postgres.data_dir(RunFolder(self.run_dir))
            if data.parent.name.startswith("sessions-lab-pgdata-"):
                shutil.rmtree(data.parent, ignore_errors=True)
        assert not leftovers, f"`down` left {[p.get('name', 'supervisor') for p in leftovers]}"


class Shopper:
    """A client of the shop's JSON API over real HTTP, through nginx."""

    def __init__(self, lab: Lab, mode: str, forwarded_for: str | None = None) -> None:
        self.lab = lab
        self.jwt = get_mode(mode).is_jwt
        self.http = requests.Session()
        if forwarded_for:
            self.http.headers["X-Forwarded-For"] = forwarded_for
        self.access = ""
        self.served_by: list[str] = []

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        headers = {}
        if self.access:
            headers["Authorization"] = f"Bearer {self.access}"
        elif method != "GET":
            headers["X-CSRFToken"] = self.http.cookies.get("csrftoken", "")
        response = self.http.request(
            method, self.lab.url + path, json=body, headers=headers, timeout=10
        )
        self.served_by.append(response.headers.get("X-Served-By", ""))
        return response

    def whoami(self) -> dict[str, Any]:
        response = self.call("GET", "/api/whoami/")
        assert response.status_code == 200, response.text
        return response.json()

    def login(self, username: str, password: str = DEMO_PASSWORD) -> None:
        if not self.http.cookies.get("csrftoken"):
            self.whoami()
        if self.jwt:
            response = self.call(
                "POST", "/api/token/", {"username": username, "password": password}
            )
            assert response.status_code == 200, response.text
            self.access = response.json()["access"]
        else:
            response = self.call(
                "POST", "/api/session/login/", {"username": username, "password": password}
            )
            assert response.status_code == 200, response.text

    def put_item(self, product: int, quantity: int) -> requests.Response:
        if not self.access and not self.http.cookies.get("csrftoken"):
            self.whoami()
        return self.call("PUT", f"/api/cart/items/{product}/", {"quantity": quantity})

    def cart(self) -> dict[int, int]:
        response = self.call("GET", "/api/cart/")
        assert response.status_code == 200, response.text
        return {item["product"]: item["quantity"] for item in response.json()["items"]}

    def products(self) -> list[int]:
        response = self.call("GET", "/api/products/")
        assert response.status_code == 200, response.text
        return [product["id"] for product in response.json()]


def through(lab: Lab, mode: str, instance: str, cookies_of: Shopper | None = None) -> Shopper:
    """A shopper that talks to one instance directly, past nginx; with ``cookies_of``'s
    cookies, it carries that shopper's session."""
    shopper = Shopper(lab, mode)
    shopper.lab = SimpleNamespace(url=f"http://127.0.0.1:{lab.process(instance)['port']}")
    if cookies_of is not None:
        shopper.http.cookies.update(cookies_of.http.cookies)
    return shopper


def written_through(lab: Lab, mode: str, instance: str, user: str, cart: dict[int, int]) -> Shopper:
    """``user`` logged in through ``instance`` alone, with ``cart`` put in their cart: a
    session that instance wrote, for the others to read."""
    writer = through(lab, mode, instance)
    writer.login(user)
    for product, quantity in cart.items():
        assert writer.put_item(product, quantity).status_code == 200
    return writer


def read_through(
    lab: Lab,
    mode: str,
    writer: Shopper,
    instances: tuple[str, ...],
    user: str,
    cart: dict[int, int],
) -> list[Shopper]:
    """``writer``'s session read through each of ``instances`` directly: the same login and
    cart, whichever instance asks. The readers, for a mode's own checks of their answers."""
    readers = []
    for instance in instances:
        reader = through(lab, mode, instance, cookies_of=writer)
        assert reader.cart() == cart
        assert reader.whoami()["username"] == user
        assert set(reader.served_by) == {instance}
        readers.append(reader)
    return readers


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout} s: {what}")
        time.sleep(0.02)


def leftover_processes(state: dict[str, Any]) -> list[int]:
    """Live pids of any process group the lab started."""
    pids = []
    for process in state["processes"]:
        if process.get("pid"):
            pids.extend(group_members(process["pid"]))
    return pids


@pytest.fixture
def make_lab(tmp_path: Path) -> Iterator[Callable[..., Lab]]:
    """Start a lab with ``up`` arguments; every lab started is torn down after the test."""
    labs: list[Lab] = []

    def start(*args: str) -> Lab:
        lab = Lab(tmp_path / f"lab{len(labs)}", free_port())
        labs.append(lab)
        lab.up(*args)
        return lab

    yield start
    for lab in labs:
        lab.teardown()
