"""One real gunicorn instance of the shop, for the load-test tests to shop at.

The instance gets a database of its own (a SQLite file in a temporary
folder), migrated and holding the demo users, and runs in a process group
of its own so that stopping it stops its worker too.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEMO_USERS = 10
START_DEADLINE_S = 30.0


@dataclass(frozen=True)
class Shop:
    url: str
    database: Path
    folder: Path
    pid: int


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def shop_env(mode: str, database: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "SECRET_KEY": "loadtests-only-secret-key-0123456789-abcdefghijklmnop",
        "JWT_SIGNING_KEY": "loadtests-only-jwt-signing-key-9876543210-zyxwvutsrq",
        "COOKIE_SECURE": "0",
        "DEBUG": "0",
        "SESSION_MODE": mode,
        "INSTANCE_NAME": "app1",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SETTINGS_MODULE": "sessions_lab.settings",
        **(extra or {}),
    }


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def _wait_healthy(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while not _healthy(port):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the shop on port {port} was not healthy in time:\n{log.read_text()}"
            )
        try:
            # Waiting on the process paces the polling and notices an early exit.
            process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            continue
        raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop gunicorn and its worker: the whole process group, which its pid names."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return  # the group is gone: the worker went with its master
    process.wait(timeout=10)


@contextmanager
def running_shop(
    mode: str,
    folder: Path,
    extra_env: Mapping[str, str] | None = None,
    gunicorn_args: tuple[str, ...] = (),
) -> Iterator[Shop]:
    """A migrated shop in ``mode`` with user1..user10, served on a free loopback port."""
    database = folder / "db.sqlite3"
    env = shop_env(mode, database, extra_env)
    for command in (["migrate", "--noinput"], ["create_demo_users", str(DEMO_USERS)]):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=PROJECT_ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        str(BIN / "gunicorn"), "sessions_lab.wsgi:application",
        "--bind", f"127.0.0.1:{port}",
        "--workers", "1",
        "--threads", "4",
        "--control-socket", str(folder / "g.ctl"),
        *gunicorn_args,
    ]  # fmt: skip
    log = folder / "gunicorn.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            argv,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_healthy(port, process, log)
        yield Shop(url=url, database=database, folder=folder, pid=process.pid)
    finally:
        _stop(process)
