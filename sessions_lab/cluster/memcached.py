"""The lab's memcached nodes: one per app instance, the session shards of ``memcached``.

Every instance lists every node, in node order (``MEMCACHED_SERVERS``), and
its client hashes each session key to one of them: a node's death loses
exactly the sessions hashed to it, and a node started again comes back
empty (memcached keeps nothing on disk). The nodes are those of ``up``: a
scale-out (``add app4``) gets none, since every instance, old and new, must
hash a key to the same node, and a new node would move a share of every
node's keys to an empty one.
"""

from __future__ import annotations

import os

from sessions_lab.cluster.binaries import Binary
from sessions_lab.cluster.config import LabConfig, RunFolder
from sessions_lab.cluster.processes import ProcessSpec

MEMORY_MB = 64
MAX_CONNECTIONS = 1024


def memcached_argv(binary: Binary, address: str, port: int) -> list[str]:
    """memcached on ``address:port``: TCP only (``-U 0``), 64 MB, 1024 connections."""
    argv = [
        str(binary.path), "-l", address, "-p", str(port), "-U", "0",
        "-m", str(MEMORY_MB), "-c", str(MAX_CONNECTIONS),
    ]  # fmt: skip
    # memcached refuses to run as root without a user to switch to.
    if os.geteuid() == 0:
        argv += ["-u", "nobody"]
    return argv


def memcached_spec(config: LabConfig, run: RunFolder, binary: Binary, name: str) -> ProcessSpec:
    """How to run node ``name`` (memcached1..N) on its port."""
    port = config.memcached_ports[config.memcached_names.index(name)]
    return ProcessSpec(
        name=name,
        role="memcached",
        argv=memcached_argv(binary, config.listen_address, port),
        cwd=run.root,
        log=run.log(name),
        port=port,
        health="memcached",
    )
