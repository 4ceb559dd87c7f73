"""The lab's Redis (valkey-server): the session store of ``redis`` and ``cached_db``.

``--redis-persistence`` decides whether sessions survive a restart of Redis
itself (AOF), the lesson of the `redis` mode
(docs/architecture.md, "The modes").
"""

from __future__ import annotations

from sessions_lab.cluster.binaries import Binary
from sessions_lab.cluster.config import LabConfig, RunFolder
from sessions_lab.cluster.processes import ProcessSpec
from sessions_lab.cluster.templates import render


def render_redis_conf(bind_address: str, port: int, data_dir: str, persistence: str) -> str:
    """redis.conf for one Redis; ``persistence`` is ``--redis-persistence`` (none or aof)."""
    return render(
        "redis.conf.tmpl",
        bind_address=bind_address,
        port=port,
        data_dir=data_dir,
        appendonly="yes" if persistence == "aof" else "no",
    )


def redis_spec(config: LabConfig, run: RunFolder, binary: Binary) -> ProcessSpec:
    """Render redis.conf into the run folder and say how to run it."""
    assert config.redis_port is not None
    data = run.redis / "data"
    data.mkdir(parents=True, exist_ok=True)
    conf = run.redis / "redis.conf"
    conf.write_text(
        render_redis_conf(
            config.listen_address, config.redis_port, str(data), config.redis_persistence
        ),
        encoding="utf-8",
    )
    return ProcessSpec(
        name="redis",
        role="redis",
        argv=[str(binary.path), str(conf)],
        cwd=run.redis,
        log=run.log("redis"),
        port=config.redis_port,
        health="redis",
    )
