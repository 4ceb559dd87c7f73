"""Bringing a run up: the binaries, the stores, the database, the app instances, nginx.

The order is what makes the first request succeed: the stores before the
instances that connect to them, the migrations before any traffic, and nginx
last, once every instance answers, so no client ever meets a half-started lab.
Anything that does not come up raises ``StartFailure`` naming it.
"""

from __future__ import annotations

import signal
import subprocess
import time

from sessions_lab.cluster import apps, nginx, postgres, replication
from sessions_lab.cluster.binaries import find_binary
from sessions_lab.cluster.child import StartFailure
from sessions_lab.cluster.lifecycle import START_TIMEOUT, ChildLifecycle
from sessions_lab.cluster.processes import signal_group
from sessions_lab.paths import PROJECT_ROOT
from sessions_lab.waiting import wait_until

NGINX_START_TIMEOUT = 10.0


class BringUp(ChildLifecycle):
    """Starts every child of the run, in order."""

    def find_binaries(self) -> None:
        self.binaries["nginx"] = find_binary("nginx")
        if self.mode.uses_redis or self.mode.uses_replication:
            self.binaries["redis"] = find_binary("redis")
        if self.mode.uses_memcached:
            self.binaries["memcached"] = find_binary("memcached")
        if self.config.db == "postgres":
            self.binaries["postgres"] = find_binary("postgres")
        balancing = nginx.balancing_for(self.config, self.binaries["nginx"].version)
        self.notes = list(balancing.notes)

    def bring_up(self) -> None:
        """Start everything in order; raise ``StartFailure`` naming what did not come up."""
        self.find_binaries()
        self.write_state()
        deadline = time.monotonic() + START_TIMEOUT
        if "postgres" in self.children:
            try:
                self.spawn(self.children["postgres"])
                postgres.create_database(self.config, deadline)
            except postgres.PostgresError as error:
                raise StartFailure("postgres", str(error)) from None
            self.wait_healthy(self.children["postgres"])
        if "redis" in self.children:
            self.spawn(self.children["redis"])
            self.wait_healthy(self.children["redis"])
        # The primary before its replicas, and both before the Sentinels that watch them.
        replication.forget_sentinels(self.run)
        for role in ("memcached", "primary", "replica", "sentinel"):
            servers = [child for child in self.children.values() if child.role == role]
            for server in servers:
                self.spawn(server)
            for server in servers:
                self.wait_healthy(server)
        self.start_apps(deadline)
        self.spawn(self.children["nginx"])
        self.wait_healthy(self.children["nginx"], NGINX_START_TIMEOUT)

    def start_apps(self, deadline: float) -> None:
        """Prepare the database and start the app instances, both by ``deadline``."""
        # Migrations and demo users run while the instances boot: no traffic
        # reaches an instance before nginx starts, and nginx starts after both.
        prepare_log = self.run.log("prepare-database")
        with prepare_log.open("ab") as out:
            preparing = subprocess.Popen(  # noqa: S603 - argv built by the lab
                apps.prepare_database_argv(self.config),
                cwd=PROJECT_ROOT,
                env=apps.app_env(self.config, self.run, "app1"),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            app_children = [c for c in self.children.values() if c.role == "app"]
            for child in app_children:
                self.spawn(child)
            finished = wait_until(
                lambda: preparing.poll() is not None,
                deadline - time.monotonic(),
                abort=self.aborting.is_set,
            )
            if not finished:
                raise StartFailure("prepare-database", "migrations did not finish")
            if preparing.returncode != 0:
                raise StartFailure(
                    "prepare-database",
                    f"migrations or demo users failed (exit {preparing.returncode})",
                )
        finally:
            if preparing.poll() is None:
                signal_group(preparing.pid, signal.SIGKILL)
                preparing.wait()
        for child in app_children:
            self.wait_healthy(child, max(1.0, deadline - time.monotonic()))
