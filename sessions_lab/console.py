"""What the CLI prints about a lab: ``up``'s summary, ``status``'s table, ``doctor``'s list.

Kept apart from ``cli.py``, which parses and dispatches: these turn a lab's
state into the lines a user reads first, and each ends by saying what to do
next.
"""

from __future__ import annotations

import os
from typing import Any

from sessions_lab.cluster.binaries import NGINX_STICKY_SINCE, BinaryNotFoundError, find_binary
from sessions_lab.cluster.config import ShopOptions
from sessions_lab.cluster.network import redis_role


def print_up(state: dict[str, Any]) -> None:
    apps = [p for p in state["processes"] if p["role"] == "app"]
    print(
        f"sessions lab is up: {state['url']}  (mode {state['mode']}, {len(apps)} instances, "
        f"affinity {state['affinity']}, db {state['db']})"
    )
    options = ShopOptions.from_dict(state.get("shop")).describe()
    if options:
        print(f"shop: {options}")
    for note in state.get("notes", []):
        print(f"note: {note}")
    if state.get("dashboard_url"):
        print(f"Dashboard: {state['dashboard_url']}  (live requests, faults, session losses)")
    victim = apps[1]["name"] if len(apps) > 1 else apps[0]["name"]
    print(
        f"Break it: sessions-lab kill {victim}   ·   status: sessions-lab status   ·   "
        "stop: sessions-lab down"
    )
    nodes = [p["name"] for p in state["processes"] if p["role"] == "memcached"]
    if nodes:
        print(
            f"Cache nodes: {', '.join(nodes)} (X-Session-Node says whose session is where); "
            f"sessions-lab kill {nodes[min(1, len(nodes) - 1)]} loses the sessions hashed to it"
        )
    if any(p["role"] == "sentinel" for p in state["processes"]):
        print(
            "Replication: each instance reads its own appN-replica and writes to the primary "
            "the Sentinels name; sessions-lab kill redis-primary makes them promote a replica"
        )


def print_status(state: dict[str, Any]) -> None:
    supervisor = "running" if state["supervisor"]["running"] else "not running"
    print(
        f"{state['url']}  mode {state['mode']}  affinity {state['affinity']}  db {state['db']}  "
        f"phase {state['phase']}  supervisor {supervisor}"
    )
    print(f"{'NAME':<14}{'PID':>8}{'PORT':>7}  {'STATUS':<13}{'HEALTHY':<9}LAST EXIT")
    for process in state["processes"]:
        status = process["status"] + ("*" if process.get("drained") else "")
        exit_cause = (process.get("exit") or {}).get("cause", "")
        print(
            f"{process['name']:<14}{process['pid'] or '-':>8}{process['port']:>7}  "
            f"{status:<13}{'yes' if process['healthy'] else 'no':<9}{exit_cause}"
        )
    servers = [p for p in state["processes"] if p["role"] in ("primary", "replica")]
    primaries = [p["name"] for p in servers if p["pid"] and redis_role(p["port"]) == "master"]
    if servers:
        print(f"primary now: {', '.join(primaries) or 'none (the Sentinels are electing one)'}")
    if any(process.get("drained") for process in state["processes"]):
        print("* drained: out of nginx until `sessions-lab start NAME`")


# Binaries only some modes need: missing, they are reported but fail no check.
ONLY_FOR = {"memcached": "only --mode memcached needs it"}


def doctor() -> int:
    ok = True
    for role in ("nginx", "redis", "postgres", "memcached"):
        try:
            binary = find_binary(role)
        except BinaryNotFoundError as error:
            optional = f" ({ONLY_FOR[role]})" if role in ONLY_FOR else ""
            print(f"{role:<9} MISSING  {error}{optional}")
            ok = ok and role in ONLY_FOR
            continue
        print(f"{role:<9} {binary.version_text:<8} {binary.source:<26} {binary.path}")
        if role == "nginx" and binary.version < NGINX_STICKY_SINCE:
            print(
                "          no open-source `sticky`: --affinity cookie falls back to a hashed "
                "cookie; learn and route cannot be shown"
            )
    if os.geteuid() == 0:
        print("running as root: PostgreSQL will run as `nobody` (it refuses root)")
    return 0 if ok else 1
