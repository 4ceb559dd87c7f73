"""The ``replicated`` mode's servers: a Valkey primary, a replica per instance, three Sentinels.

Each app instance reads sessions from its own replica (``app1-replica`` …)
and writes them to the primary the Sentinels name (``redis-primary`` at
``up``). When the primary dies, two of the three Sentinels agree within
about a second and promote a replica; the others follow it, and the killed
server, started again, comes back empty and is made a replica too. Names
are fixed at ``up``: ``redis-primary`` keeps its name after a failover
demoted it (``sessions-lab status`` says who is primary now). A scale-out
(``add app4``) gets no replica of its own: it reads from the primary.

One binary runs all three roles: valkey-server, with ``--sentinel`` for a
Sentinel (docs/architecture.md, "Server binaries").
"""

from __future__ import annotations

from pathlib import Path

from sessions_lab.cluster.binaries import Binary
from sessions_lab.cluster.config import LabConfig, RunFolder
from sessions_lab.cluster.processes import ProcessSpec
from sessions_lab.cluster.templates import render
from sessions_lab.modes import SENTINEL_SERVICE

PRIMARY = "redis-primary"


def server_conf(
    bind_address: str,
    port: int,
    data_dir: str,
    primary: tuple[str, int] | None = None,
    announce: str = "",
) -> str:
    """valkey.conf for the primary, or (``primary`` given) a replica of it."""
    return render(
        "valkey-replicated.conf.tmpl",
        bind_address=bind_address,
        port=port,
        data_dir=data_dir,
        replicaof=f"replicaof {primary[0]} {primary[1]}" if primary else "",
        announce=f"replica-announce-ip {announce}" if announce else "",
    )


def sentinel_conf(
    bind_address: str,
    port: int,
    data_dir: str,
    primary: tuple[str, int],
    announce: str = "",
) -> str:
    """sentinel.conf: watch ``primary`` under the service name the shop asks for."""
    return render(
        "sentinel.conf.tmpl",
        bind_address=bind_address,
        port=port,
        data_dir=data_dir,
        service=SENTINEL_SERVICE,
        primary_host=primary[0],
        primary_port=primary[1],
        announce=f"sentinel announce-ip {announce}" if announce else "",
    )


def folder(run: RunFolder, name: str) -> Path:
    path = run.root / "replication" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def forget_sentinels(run: RunFolder) -> None:
    """At ``up``: every Sentinel starts from the rendered file, not what a last run taught it."""
    for conf in (run.root / "replication").glob("sentinel*/sentinel.conf"):
        conf.unlink()


def server_spec(config: LabConfig, run: RunFolder, binary: Binary, name: str) -> ProcessSpec:
    """How to run ``redis-primary`` or ``appN-replica``; each start renders its file afresh."""
    if name == PRIMARY:
        port, primary = config.primary_port, None
    else:
        port = config.replica_ports[config.replica_names.index(name)]
        primary = (config.listen_address, config.primary_port)
    assert port is not None and config.primary_port is not None
    data = folder(run, name)
    conf = data / "valkey.conf"
    conf.write_text(server_conf(config.listen_address, port, str(data), primary), "utf-8")
    return ProcessSpec(
        name=name,
        role="replica" if primary else "primary",
        argv=[str(binary.path), str(conf)],
        cwd=data,
        log=run.log(name),
        port=port,
        # A replica is ready once it has the primary's data (or, started again after
        # a failover, the data of the primary the Sentinels point it to).
        health="replica" if primary else "redis",
    )


def sentinel_spec(config: LabConfig, run: RunFolder, binary: Binary, name: str) -> ProcessSpec:
    """How to run ``sentinelN``: a restarted Sentinel keeps the file it rewrote."""
    assert config.primary_port is not None
    port = config.sentinel_ports[config.sentinel_names.index(name)]
    data = folder(run, name)
    conf = data / "sentinel.conf"
    if not conf.exists():
        primary = (config.listen_address, config.primary_port)
        conf.write_text(sentinel_conf(config.listen_address, port, str(data), primary), "utf-8")
    return ProcessSpec(
        name=name,
        role="sentinel",
        argv=[str(binary.path), str(conf), "--sentinel"],
        cwd=data,
        log=run.log(name),
        port=port,
        health="redis",
    )
