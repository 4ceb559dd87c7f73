"""The lab under docker-compose: the same server configurations, the same fault commands.

Workshop attendees with Docker run ``deploy/docker-compose.yml`` instead of the
native cluster. That file is written by hand (three app services, fixed
addresses); what changes from run to run -- nginx's balancing and Redis's
persistence -- is rendered here from the templates the native cluster uses,
every variant at once into ``deploy/nginx/`` and ``deploy/redis/``, and
compose picks one by ``SESSION_MODE``, ``LAB_AFFINITY`` and
``LAB_REDIS_PERSISTENCE`` from ``deploy/.env``. Switching mode is then an
edit of ``.env``, with nothing to render again.

``ComposeCluster`` drives faults through ``docker compose`` with the method
names and return conventions of ``Cluster`` (a message string, ``LabError``
for a request that cannot be carried out), so the experiment runner can fire
a scenario at either target.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from sessions_lab.cluster.apps import GRACEFUL_TIMEOUT, PROJECT_ROOT
from sessions_lab.cluster.cluster import SIGNALS, Cluster, LabError, LabFailure
from sessions_lab.cluster.config import AFFINITIES, REDIS_PERSISTENCE, LabConfig, RunFolder
from sessions_lab.cluster.nginx import NginxPlacement, render_nginx_for
from sessions_lab.cluster.postgres import DATABASE, SUPERUSER
from sessions_lab.cluster.redis import render_redis_conf
from sessions_lab.cluster.supervisor import STOP_TIMEOUT
from sessions_lab.modes import MODE_NAMES, LoadBalancing, get_mode

DEPLOY_DIR = PROJECT_ROOT / "deploy"
COMPOSE_FILE = "docker-compose.yml"

# Addresses inside the compose network; they must match docker-compose.yml
# (tests/compose checks that they do).
APP_PORT = 8000
NGINX_PORT = 8080
REDIS_PORT = 6379
POSTGRES_PORT = 5432
SUBNET = "172.30.80.0/24"
# Where nginx finds deploy/nginx/ inside its container.
NGINX_CONF_DIR = "/etc/nginx/lab"

SQLITE_URL = "sqlite:////var/lib/shop/shop.sqlite3"
POSTGRES_URL = f"postgres://{SUPERUSER}@postgres:{POSTGRES_PORT}/{DATABASE}"

UP_TIMEOUT = 300  # a first `up` builds the image
COMMAND_TIMEOUT = 60
START_TIMEOUT = 30.0


def compose_services(deploy_dir: Path = DEPLOY_DIR) -> dict[str, Any]:
    """The services of the compose file, as written (before interpolation)."""
    return _parsed((deploy_dir / COMPOSE_FILE).read_text(encoding="utf-8"))["services"]


@functools.lru_cache(maxsize=4)
def _parsed(text: str) -> dict[str, Any]:
    # Rendering every variant asks for the services a dozen times; parse once.
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader


def app_services(deploy_dir: Path = DEPLOY_DIR) -> list[str]:
    """``app1``..``appN``: the instances the compose file defines, in order."""
    names = [name for name in compose_services(deploy_dir) if re.fullmatch(r"app\d+", name)]
    return sorted(names, key=lambda name: int(name[3:]))


def nginx_image_version(deploy_dir: Path = DEPLOY_DIR) -> tuple[int, ...]:
    """The nginx version the compose file pins (``nginx:1.31.3-alpine`` -> (1, 31, 3))."""
    image = compose_services(deploy_dir)["nginx"]["image"]
    found = re.search(r":(\d+)\.(\d+)\.(\d+)", image)
    if found is None:
        raise LabError(f"the nginx image {image!r} names no version; pin a tag like 1.31.3")
    return tuple(int(part) for part in found.groups())


def affinities_for(mode: str) -> tuple[str, ...]:
    """The affinities a mode can run with: all of them in sticky mode, else ``none``."""
    if get_mode(mode).load_balancing is LoadBalancing.AFFINITY:
        return AFFINITIES
    return ("none",)


def variant_name(mode: str, affinity: str) -> str:
    """The nginx configuration docker-compose.yml picks: ``<SESSION_MODE>-<LAB_AFFINITY>``."""
    return f"{mode}-{affinity}"


def compose_config(mode: str, affinity: str, instances: int) -> LabConfig:
    """The ``LabConfig`` the native cluster would use for this choice, as compose places it."""
    return LabConfig(
        mode=mode,
        instances=instances,
        affinity=affinity,
        db="sqlite",
        port=NGINX_PORT,
        redis_persistence="none",
        app_ports=[APP_PORT] * instances,
        listen_address="0.0.0.0",  # noqa: S104 - inside the container; published on loopback
    )


def compose_placement(app_names: list[str]) -> NginxPlacement:
    """nginx in its container: instances by service name, logs to Docker, no run folder."""
    return NginxPlacement(
        upstreams={name: f"{name}:{APP_PORT}" for name in app_names},
        listen_address="0.0.0.0",  # noqa: S104 - inside the container; published on loopback
        # Locust and the published port both reach nginx from the lab network.
        trusted_proxy=SUBNET,
        user_directive="",
        pid_path="/run/nginx.pid",
        # `docker compose logs nginx` shows both; the access log stays JSON lines.
        error_log="/dev/stderr",
        access_log="/dev/stdout",
        temp_dir="/var/cache/nginx",
    )


def render_nginx_variant(
    mode: str,
    affinity: str,
    in_rotation: list[str] | None = None,
    deploy_dir: Path = DEPLOY_DIR,
) -> Path:
    """Write ``nginx/<mode>-<affinity>.conf`` with ``in_rotation`` (default: every instance)."""
    names = app_services(deploy_dir)
    config = compose_config(mode, affinity, len(names))
    text = render_nginx_for(
        config,
        compose_placement(names),
        nginx_image_version(deploy_dir),
        names if in_rotation is None else in_rotation,
    )
    path = deploy_dir / "nginx" / f"{variant_name(mode, affinity)}.conf"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def render_deploy(deploy_dir: Path = DEPLOY_DIR) -> list[Path]:
    """Every nginx and Redis configuration compose can pick, rendered into ``deploy_dir``."""
    written = [
        render_nginx_variant(mode, affinity, deploy_dir=deploy_dir)
        for mode in MODE_NAMES
        for affinity in affinities_for(mode)
    ]
    (deploy_dir / "redis").mkdir(exist_ok=True)
    for persistence in REDIS_PERSISTENCE:
        path = deploy_dir / "redis" / f"{persistence}.conf"
        # Every interface of the container: only the lab network reaches it.
        path.write_text(
            render_redis_conf("0.0.0.0", REDIS_PORT, "/data", persistence),  # noqa: S104
            encoding="utf-8",
        )
        written.append(path)
    return written


# ---------------------------------------------------------------------- deploy/.env


def read_env(deploy_dir: Path = DEPLOY_DIR) -> dict[str, str]:
    """``deploy/.env`` as a dict (empty when it does not exist yet)."""
    path = deploy_dir / ".env"
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.lstrip().startswith("#"):
            values[key.strip()] = value.strip()
    return values


def write_env(choices: dict[str, str], deploy_dir: Path = DEPLOY_DIR) -> Path:
    """Set ``choices`` in ``deploy/.env``, creating it from ``.env.example`` if needed.

    Empty ``SECRET_KEY`` / ``JWT_SIGNING_KEY`` get fresh random values, made
    once: every instance shares them, and they outlive one ``up`` so a
    restarted deployment still accepts its users' cookies. Other lines, and
    comments, are kept as they are.
    """
    path = deploy_dir / ".env"
    source = path if path.exists() else deploy_dir / ".env.example"
    lines = source.read_text(encoding="utf-8").splitlines()
    values = {
        # token_urlsafe never yields "$", which compose would try to interpolate.
        "SECRET_KEY": secrets.token_urlsafe(50),
        "JWT_SIGNING_KEY": secrets.token_urlsafe(50),
    }
    current = read_env(deploy_dir) if path.exists() else {}
    values = {key: value for key, value in values.items() if not current.get(key)}
    values.update(choices)
    remaining = dict(values)
    for index, line in enumerate(lines):
        key, sep, _ = line.partition("=")
        if sep and key.strip() in remaining:
            lines[index] = f"{key.strip()}={remaining.pop(key.strip())}"
    lines.extend(f"{key}={value}" for key, value in remaining.items())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


# ---------------------------------------------------------------------- the fault driver


class ComposeCluster:
    """The compose deployment's cluster: start it, break it, stop it, through ``docker compose``."""

    def __init__(self, deploy_dir: Path | str = DEPLOY_DIR, docker: str = "docker") -> None:
        self.deploy_dir = Path(deploy_dir).resolve()
        self.compose_file = self.deploy_dir / COMPOSE_FILE
        self.docker = docker
        # Git-ignored; the runner keeps collected logs and its live files here,
        # as it does in the native run folder.
        self.run = RunFolder(self.deploy_dir / "run")
        self._drained_file = self.run.root / "drained.json"

    # ------------------------------------------------------------------ talking to docker compose

    def compose(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """Run ``docker compose -f deploy/docker-compose.yml ARGS``; its stdout, or ``LabError``."""
        argv = [self.docker, "compose", "-f", str(self.compose_file), *args]
        try:
            done = subprocess.run(  # noqa: S603 - argv built here
                argv, capture_output=True, text=True, timeout=timeout, check=False
            )
        except FileNotFoundError:
            raise LabError(
                f"`{self.docker}` was not found: install Docker (with the compose plugin)"
            ) from None
        except subprocess.TimeoutExpired:
            raise LabError(f"`docker compose {' '.join(args)}` took over {timeout:.0f} s") from None
        if done.returncode != 0:
            message = done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}"
            raise LabError(f"docker compose {' '.join(args)}: {message}")
        return done.stdout

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
        return [*app_services(self.deploy_dir), "nginx", "redis", "postgres"]

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
    ) -> dict[str, Any]:
        """Render, write the choices into ``deploy/.env``, ``up --wait``; the status once healthy."""
        # The native `up`'s checks, word for word.
        config = Cluster(self.run.root)._checked_config(
            mode, instances, affinity, db, port, redis_persistence
        )
        defined = app_services(self.deploy_dir)
        if instances != len(defined):
            raise LabError(
                f"{self.compose_file.name} defines {len(defined)} instances "
                f"({', '.join(defined)}); add or remove app services to run {instances}"
            )
        if port != NGINX_PORT:
            raise LabError(f"the compose deployment publishes nginx on {NGINX_PORT} only")
        write_env(
            {
                "SESSION_MODE": config.mode,
                "LAB_AFFINITY": config.affinity,
                "LAB_REDIS_PERSISTENCE": config.redis_persistence,
                "DATABASE_URL": POSTGRES_URL if db == "postgres" else SQLITE_URL,
                "LAB_DEMO_USERS": str(demo_users),
            },
            self.deploy_dir,
        )
        render_deploy(self.deploy_dir)
        self._save_drained([])
        # nginx depends on every instance, which depend on migrate, Redis and
        # PostgreSQL: naming nginx starts all but Locust (the runner brings its own).
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
        self.compose("start", target)
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

    def status(self) -> dict[str, Any]:
        """The shape of the native ``state.json``, read from ``docker compose ps``."""
        env = read_env(self.deploy_dir)
        containers = self.containers()
        drained = self._drained()
        ports = {"nginx": NGINX_PORT, "redis": REDIS_PORT, "postgres": POSTGRES_PORT}
        processes = []
        for name in self.targets():
            record = containers.get(name, {})
            state = record.get("State", "not started")
            exited = state in ("exited", "dead")
            processes.append(
                {
                    "name": name,
                    "role": "app" if name not in ports else name,
                    "pid": None,
                    "port": ports.get(name, APP_PORT),
                    "status": {"created": "not started", "dead": "exited"}.get(state, state),
                    "healthy": state == "running" and record.get("Health") == "healthy",
                    "drained": name in drained,
                    "exit": {"code": record.get("ExitCode"), "cause": record.get("Status", "")}
                    if exited
                    else None,
                }
            )
        running = [p for p in processes if p["status"] in ("running", "paused")]
        phase = (
            "down"
            if not running
            else "ready"
            if all(p["healthy"] for p in processes)
            else "degraded"
        )
        database_url = env.get("DATABASE_URL", SQLITE_URL)
        return {
            "driver": "compose",
            "url": f"http://127.0.0.1:{NGINX_PORT}/",
            "mode": env.get("SESSION_MODE", "sticky"),
            "affinity": env.get("LAB_AFFINITY", "cookie"),
            "db": "postgres" if database_url.startswith("postgres") else "sqlite",
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
        deadline = time.monotonic() + timeout
        while True:
            record = self.containers(target).get(target, {})
            # A service without a healthcheck has Health "": running is enough.
            if record.get("State") == "running" and record.get("Health", "") in ("healthy", ""):
                return
            if record.get("State") in ("exited", "dead"):
                raise LabError(
                    f"{target} exited: {record.get('Status', '')}; see docker compose logs {target}"
                )
            if time.monotonic() > deadline:
                raise LabError(f"{target} was not healthy within {timeout:.0f} s")
            time.sleep(0.5)  # a container health check runs every second at most

    def _drained(self) -> list[str]:
        try:
            return json.loads(self._drained_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []

    def _save_drained(self, names: list[str]) -> None:
        self.run.root.mkdir(parents=True, exist_ok=True)
        self._drained_file.write_text(json.dumps(names) + "\n", encoding="utf-8")

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
        self.compose("exec", "-T", "nginx", "nginx", "-t", "-q", "-c", conf)
        self.compose("exec", "-T", "nginx", "nginx", "-s", "reload", "-c", conf)
        self.compose("exec", "-T", "nginx", "sh", "-c", WAIT_FOR_OLD_WORKERS, timeout=30)


# A reloaded nginx keeps its old worker until that worker's requests are done;
# busybox `pgrep` sees it by its title. Bounded at 15 s, as natively.
WAIT_FOR_OLD_WORKERS = (
    "for _ in $(seq 150); do "
    "pgrep -f 'worker process is shutting down' >/dev/null || exit 0; sleep 0.1; "
    "done; echo 'the old nginx worker still runs after 15 s' >&2; exit 1"
)


def prepare_deploy(
    mode: str | None = None,
    affinity: str | None = None,
    instances: int | None = None,
    deploy_dir: Path | None = None,
) -> list[Path]:
    """``sessions-lab render --target compose``: every configuration, then ``deploy/.env``.

    With ``mode``, ``.env`` is switched to it (and its affinity); without,
    ``.env`` is only created, keys included, if it is missing. The ``.env``
    path comes last in the list returned.
    """
    deploy_dir = deploy_dir or DEPLOY_DIR
    defined = app_services(deploy_dir)
    if instances is not None and instances != len(defined):
        raise LabError(
            f"{COMPOSE_FILE} defines {len(defined)} instances ({', '.join(defined)}); "
            f"add or remove app services there to run {instances}"
        )
    choices = {}
    if mode is not None:
        # The native `up`'s checks and messages (unknown mode, affinity outside sticky).
        config = Cluster(deploy_dir / "run")._checked_config(
            mode, len(defined), affinity, "sqlite", NGINX_PORT, "none"
        )
        choices = {"SESSION_MODE": config.mode, "LAB_AFFINITY": config.affinity}
    elif affinity is not None:
        raise LabError("--affinity needs --mode sticky")
    return [*render_deploy(deploy_dir), write_env(choices, deploy_dir)]
