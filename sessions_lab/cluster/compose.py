"""The lab under docker-compose, driven like the native one: the same faults, the same answers.

``ComposeCluster`` carries out ``up``, ``kill``, ``start``, ``drain`` and
``down`` through ``docker compose`` with the return conventions of
``Cluster`` (a message string, ``LabError`` for a request that cannot be
carried out), and reports its state in the shape of the native
``state.json``: it is the second implementation of ``driver.Driver``, so the
experiment runner fires a scenario at either. The files it runs from --
``deploy/``'s nginx and Redis variants and ``.env`` -- are ``compose_files``'.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sessions_lab.cluster.apps import GRACEFUL_TIMEOUT
from sessions_lab.cluster.compose_files import (
    APP_PORT,
    COMPOSE_FILE,
    DEPLOY_DIR,
    MEMCACHED_PORT,
    NGINX_CONF_DIR,
    NGINX_PORT,
    POSTGRES_PORT,
    POSTGRES_URL,
    REDIS_PORT,
    REPLICATED_PORT,
    SENTINEL_PORT,
    SQLITE_URL,
    app_services,
    encryption_key,
    memcached_services,
    read_env,
    render_deploy,
    render_nginx_variant,
    replica_services,
    sentinel_services,
    write_env,
)
from sessions_lab.cluster.config import ENCRYPTION_KEY, RunFolder, ShopOptions, checked_config
from sessions_lab.cluster.control import SIGNALS, STOP_TIMEOUT
from sessions_lab.cluster.errors import LabError, LabFailure, run_tool
from sessions_lab.cluster.replication import PRIMARY
from sessions_lab.cluster.state import Phase, ProcessStatus
from sessions_lab.waiting import wait_until

UP_TIMEOUT = 300  # a first `up` builds the image
COMMAND_TIMEOUT = 60
START_TIMEOUT = 30.0
HEALTH_POLL = 0.5  # a container health check runs every second at most

# `docker compose ps` states in the native lab's words; "restarting" and
# "removing" have no native counterpart and are shown as Docker says them.
CONTAINER_STATUS = {
    "created": ProcessStatus.NOT_STARTED,
    "running": ProcessStatus.RUNNING,
    "paused": ProcessStatus.PAUSED,
    "exited": ProcessStatus.EXITED,
    "dead": ProcessStatus.EXITED,
}
# Compose only: some service is up but not every one is healthy. The native
# supervisor has no such phase (it stays ready and says so process by process).
DEGRADED = "degraded"

# Check the configuration, reload nginx, and wait until its old workers (which
# hold the requests routed by the old configuration) are gone: in the
# container, with Python, as natively (sessions_lab/cluster/serve.py).
RELOAD_NGINX = ("python", "-m", "sessions_lab.cluster.serve", "reload-nginx")


# `up` for one service that exists already: start it, and touch nothing else.
START_ONLY = ("--detach", "--no-deps", "--no-recreate", "--no-build")


class ComposeCluster:
    """The compose deployment's cluster: start it, break it, stop it, through ``docker compose``."""

    def __init__(self, deploy_dir: Path | str = DEPLOY_DIR, docker: str = "docker") -> None:
        self.deploy_dir = Path(deploy_dir).resolve()
        self.compose_file = self.deploy_dir / COMPOSE_FILE
        self.docker = docker
        # Git-ignored; the runner keeps collected logs and its live files here,
        # as it does in the native run folder.
        self.run = RunFolder(self.deploy_dir / "run")

    # ------------------------------------------------------------------ talking to docker compose

    def compose(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """Run ``docker compose -f deploy/docker-compose.yml ARGS``; its stdout, or ``LabError``."""
        return run_tool(
            [self.docker, "compose", "-f", str(self.compose_file), *args],
            f"docker compose {' '.join(args)}",
            f"`{self.docker}` was not found: install Docker (with the compose plugin)",
            timeout,
        )

    def containers(self, *services: str) -> dict[str, dict[str, Any]]:
        """``docker compose ps --all`` by service: State (running, paused, exited), Health, …"""
        output = self.compose("ps", "--all", "--format", "json", *services).strip()
        if not output:
            return {}
        # Compose writes one JSON object a line; versions before 2.21 one JSON array.
        records = json.loads(output) if output.startswith("[") else [
            json.loads(line) for line in output.splitlines() if line.strip()
        ]  # fmt: skip
        return {record["Service"]: record for record in records}

    def targets(self) -> list[str]:
        return [
            *app_services(self.deploy_dir),
            "nginx",
            "redis",
            "postgres",
            *memcached_services(self.deploy_dir),
            PRIMARY,
            *replica_services(self.deploy_dir),
            *sentinel_services(self.deploy_dir),
        ]

    def _check_target(self, target: str) -> None:
        if target not in self.targets():
            raise LabError(f"unknown target {target!r}: this lab runs {', '.join(self.targets())}")

    # ------------------------------------------------------------------ commands

    def up(
        self,
        mode: str,
        instances: int = 3,
        affinity: str | None = None,
        db: str = "sqlite",
        port: int = NGINX_PORT,
        redis_persistence: str = "none",
        demo_users: int = 10,
        replication: str = "async",
        shop: ShopOptions | None = None,
    ) -> dict[str, Any]:
        """Render, write the choices into ``deploy/.env``, ``up --wait``; the status once healthy."""
        # The native `up`'s checks, word for word.
        config = checked_config(
            mode, instances, affinity, db, port, redis_persistence, replication, shop
        )
        defined = app_services(self.deploy_dir)
        if instances != len(defined):
            raise LabError(
                f"{self.compose_file.name} defines {len(defined)} instances "
                f"({', '.join(defined)}); add or remove app services to run {instances}"
            )
        write_env(
            {
                # The host port nginx is published on; inside it listens on 8080.
                "LAB_PORT": str(port),
                "SESSION_MODE": config.mode,
                "LAB_AFFINITY": config.affinity,
                "LAB_REDIS_PERSISTENCE": config.redis_persistence,
                # Read by the replicated mode only: does each save wait for a replica?
                "LAB_REPLICATION": config.replication,
                "DATABASE_URL": POSTGRES_URL if db == "postgres" else SQLITE_URL,
                "LAB_DEMO_USERS": str(demo_users),
                # Kept across runs, like SECRET_KEY; handed to the shop only with --encrypt-sessions.
                ENCRYPTION_KEY: (key := encryption_key(self.deploy_dir)),
                **config.shop.env(key),
            },
            self.deploy_dir,
        )
        render_deploy(self.deploy_dir)
        self._save_drained([])
        # nginx depends on every instance, which depend on migrate, Redis,
        # PostgreSQL, the memcached nodes and the replicated store (primary,
        # replicas, Sentinels): naming nginx starts all but Locust (the runner
        # brings its own).
        try:
            self.compose(
                "up", "--detach", "--build", "--wait", "--wait-timeout", str(UP_TIMEOUT),
                "nginx", timeout=UP_TIMEOUT + 60,
            )  # fmt: skip
        except LabError as error:
            raise LabFailure(f"up failed: {error}") from None
        return self.status()

    def down(self) -> str:
        self.compose("down", timeout=UP_TIMEOUT)
        self._save_drained([])
        # A drained variant must not outlive the run: a later `docker compose up`
        # by hand would start nginx without that instance.
        render_deploy(self.deploy_dir)
        return "every service stopped and removed (docker compose down; volumes kept)"

    def kill(self, target: str, signal_name: str = "KILL") -> str:
        signal_name = signal_name.upper().removeprefix("SIG")
        if signal_name not in SIGNALS:
            raise LabError(f"--signal is one of {', '.join(SIGNALS)}")
        self._check_target(target)
        if signal_name == "STOP":
            # The cgroup freezer: every process of the container stops, as
            # SIGSTOP of the native process group does.
            self.compose("pause", target)
            return (
                f"{target} paused (docker compose pause): it holds the requests sent to it; "
                f"`sessions-lab start {target}` resumes it"
            )
        if signal_name == "TERM":
            # SIGTERM, then as long as the native lab waits for a graceful exit.
            grace = GRACEFUL_TIMEOUT + int(STOP_TIMEOUT)
            self._unpausing(
                target, "stop", "--timeout", str(grace), target, timeout=grace + COMMAND_TIMEOUT
            )
            return f"{target} stopped (SIGTERM, docker compose stop)"
        self._unpausing(target, "kill", "-s", "SIGKILL", target)
        return f"{target} killed (SIGKILL)"

    def _unpausing(self, target: str, *args: str, timeout: float = COMMAND_TIMEOUT) -> None:
        """Run a stop or kill; Docker refuses both on a paused container, so unpause and retry
        (natively, SIGCONT follows the signal). Only then: the usual case is one command."""
        try:
            self.compose(*args, timeout=timeout)
        except LabError as error:
            if "paused" not in str(error):
                raise
            self.compose("unpause", target)
            self.compose(*args, timeout=timeout)

    def start(self, target: str) -> str:
        self._check_target(target)
        if self.containers(target).get(target, {}).get("State") == "paused":
            self.compose("unpause", target)
            return f"{target} resumed (docker compose unpause)"
        # Not `docker compose start`: it starts the target's dependencies too,
        # the one-shot `migrate` among them, and nothing else may move while a
        # scenario runs. `up --no-deps --no-recreate` starts this container only.
        self.compose("up", *START_ONLY, target)
        self._wait_healthy(target)
        if target in self._drained():
            self._save_drained([name for name in self._drained() if name != target])
            self._reload_nginx()
            return f"{target} started and back in nginx"
        return f"{target} started"

    def restart(self, target: str) -> str:
        self.kill(target, "TERM")
        return self.start(target).replace("started", "restarted", 1)

    def add(self, target: str) -> str:
        """The compose file names its app services; scale-out needs the native lab."""
        raise LabError(
            f"cannot add {target}: deploy/docker-compose.yml runs a fixed set of app services; "
            "run the scale-out scenario natively"
        )

    def drain(self, target: str) -> str:
        self._check_target(target)
        if target not in app_services(self.deploy_dir):
            raise LabError(f"only app instances can be drained, not {target}")
        drained = self._drained()
        if target in drained:
            return f"{target} is already drained"
        if self._in_rotation(drained) == [target]:
            raise LabError(f"{target} is the last instance in nginx; start another first")
        self._save_drained([*drained, target])
        self._reload_nginx()
        return (
            f"{target} drained: nginx sends it nothing and its requests in flight are done; "
            f"`sessions-lab kill {target} --signal TERM` now loses nothing"
        )

    def manage(self, *arguments: str) -> str:
        """``manage.py ARGUMENTS`` in app1's container: its environment, its database."""
        return self.compose("exec", "-T", "app1", "python", "manage.py", *arguments, timeout=60)

    def status(self) -> dict[str, Any]:
        """The shape of the native ``state.json``, read from ``docker compose ps``."""
        env = read_env(self.deploy_dir)
        containers = self.containers()
        drained = self._drained()
        nodes = memcached_services(self.deploy_dir)
        replicas = replica_services(self.deploy_dir)
        sentinels = sentinel_services(self.deploy_dir)
        # The native state's roles: app, memcached, primary, replica, sentinel, else the name.
        roles = {
            **dict.fromkeys(app_services(self.deploy_dir), "app"),
            **dict.fromkeys(nodes, "memcached"),
            PRIMARY: "primary",
            **dict.fromkeys(replicas, "replica"),
            **dict.fromkeys(sentinels, "sentinel"),
        }
        ports = {
            "nginx": NGINX_PORT,
            "redis": REDIS_PORT,
            "postgres": POSTGRES_PORT,
            **dict.fromkeys(nodes, MEMCACHED_PORT),
            **dict.fromkeys([PRIMARY, *replicas], REPLICATED_PORT),
            **dict.fromkeys(sentinels, SENTINEL_PORT),
        }
        processes = []
        for name in self.targets():
            record = containers.get(name, {})
            state = record.get("State", ProcessStatus.NOT_STARTED)
            status = CONTAINER_STATUS.get(state, state)
            processes.append(
                {
                    "name": name,
                    "role": roles.get(name, name),
                    "pid": None,
                    "port": ports.get(name, APP_PORT),
                    "status": status,
                    "healthy": state == "running" and record.get("Health") == "healthy",
                    "drained": name in drained,
                    "exit": {"code": record.get("ExitCode"), "cause": record.get("Status", "")}
                    if status == ProcessStatus.EXITED
                    else None,
                }
            )
        running = [
            p for p in processes if p["status"] in (ProcessStatus.RUNNING, ProcessStatus.PAUSED)
        ]
        phase = (
            Phase.DOWN
            if not running
            else Phase.READY
            if all(p["healthy"] for p in processes)
            else DEGRADED
        )
        database_url = env.get("DATABASE_URL", SQLITE_URL)
        return {
            "driver": "compose",
            "url": f"http://127.0.0.1:{env.get('LAB_PORT') or NGINX_PORT}/",
            "mode": env.get("SESSION_MODE", "sticky"),
            "affinity": env.get("LAB_AFFINITY", "cookie"),
            "db": "postgres" if database_url.startswith("postgres") else "sqlite",
            "shop": asdict(ShopOptions.from_env(env)),
            "phase": phase,
            # No supervisor here: Docker owns the containers. "running" says
            # whether any service is up, which is what `status` shows.
            "supervisor": {"running": bool(running)},
            "processes": processes,
            "notes": [],
        }

    def collect_logs(self) -> Path:
        """Each service's log into ``run/logs/`` (nginx's access lines apart), as natively."""
        self.run.logs.mkdir(parents=True, exist_ok=True)
        for name in ["migrate", *self.targets()]:
            text = self.compose("logs", "--no-color", "--no-log-prefix", name)
            if name == "nginx":
                access = [line for line in text.splitlines() if line.startswith("{")]
                self.run.access_log.write_text("".join(f"{line}\n" for line in access))
                text = "".join(
                    f"{line}\n" for line in text.splitlines() if not line.startswith("{")
                )
            log = self.run.log("prepare-database" if name == "migrate" else name)
            log.write_text(text, encoding="utf-8")
        return self.run.logs

    # ------------------------------------------------------------------ helpers

    def _wait_healthy(self, target: str, timeout: float = START_TIMEOUT) -> None:
        def healthy() -> bool:
            record = self.containers(target).get(target, {})
            if record.get("State") in ("exited", "dead"):
                raise LabError(
                    f"{target} exited: {record.get('Status', '')}; see docker compose logs {target}"
                )
            # A service without a healthcheck has Health "": running is enough.
            return record.get("State") == "running" and record.get("Health", "") in ("healthy", "")

        if not wait_until(healthy, timeout, interval=HEALTH_POLL):
            raise LabError(f"{target} was not healthy within {timeout:.0f} s")

    def _drained(self) -> list[str]:
        try:
            return json.loads(self.run.drained.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []

    def _save_drained(self, names: list[str]) -> None:
        self.run.root.mkdir(parents=True, exist_ok=True)
        self.run.drained.write_text(json.dumps(names) + "\n", encoding="utf-8")

    def _in_rotation(self, drained: list[str]) -> list[str]:
        return [name for name in app_services(self.deploy_dir) if name not in drained]

    def _reload_nginx(self) -> None:
        """Render the running variant for the instances in rotation, check it, reload nginx,
        and wait until the old worker is gone: it holds the requests sent before."""
        env = read_env(self.deploy_dir)
        mode = env.get("SESSION_MODE", "sticky")
        affinity = env.get("LAB_AFFINITY", "cookie")
        path = render_nginx_variant(
            mode, affinity, self._in_rotation(self._drained()), self.deploy_dir
        )
        conf = f"{NGINX_CONF_DIR}/{path.name}"
        self.compose("exec", "-T", "nginx", *RELOAD_NGINX, conf, timeout=30)
