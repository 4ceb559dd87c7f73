"""``sessions-lab``: start the cluster, break it, look at it, stop it.

Every user error (a port in use, a missing binary, a second ``up``, an
unknown target) is one line on stderr saying what to do, and exit code 2;
a process that fails to come up is exit code 1 with the tail of its log.
Never a traceback for either.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sessions_lab.cluster.binaries import NGINX_STICKY_SINCE, BinaryNotFoundError, find_binary
from sessions_lab.cluster.cluster import Cluster, LabError, LabFailure
from sessions_lab.cluster.config import AFFINITIES, DATABASES, REDIS_PERSISTENCE, REPLICATION
from sessions_lab.cluster.control import SIGNALS, tail
from sessions_lab.cluster.driver import DRIVERS
from sessions_lab.cluster.network import redis_role
from sessions_lab.experiments.scenarios import SCENARIOS
from sessions_lab.modes import MODE_NAMES

TARGET_HELP = (
    "app1..appN, nginx, redis, postgres, memcached1..N, redis-primary, app1-replica.., sentinel1..3"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sessions-lab",
        description="Run the sessions lab cluster (nginx + N Django instances) and break it.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--run-dir", default=".lab", type=Path, help="run folder (default: .lab)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = functools.partial(commands.add_parser, parents=[common])

    up = add("up", help="start the cluster; returns once all is healthy")
    up.add_argument("--mode", required=True, choices=MODE_NAMES)
    up.add_argument("--instances", type=int, default=3, help="app instances (default: 3)")
    up.add_argument("--affinity", choices=AFFINITIES, help="sticky mode only (default: cookie)")
    up.add_argument("--db", choices=DATABASES, default="sqlite")
    up.add_argument("--port", type=int, default=8080, help="nginx port (default: 8080)")
    up.add_argument("--redis-persistence", choices=REDIS_PERSISTENCE, default="none")
    up.add_argument(
        "--replication",
        choices=REPLICATION,
        default="async",
        help="replicated mode: sync makes each save wait for a replica (default: async)",
    )
    up.add_argument("--demo-users", type=int, default=10, help="user1..userN (default: 10)")

    status = add("status", help="every process: pid, port, health, exit cause")
    status.add_argument("--json", action="store_true", help="print state.json")

    kill = add("kill", help="send a signal to a process (group)")
    kill.add_argument("target", help=TARGET_HELP)
    kill.add_argument("--signal", default="KILL", type=str.upper, choices=SIGNALS)
    for name, text in (
        ("start", "start a stopped process (or resume a paused one)"),
        ("restart", "stop a process gracefully and start it again"),
        ("drain", "take an app instance out of nginx, waiting for its requests"),
    ):
        add(name, help=text).add_argument("target", help=TARGET_HELP)
    logs = add("logs", help="the end of a process's log")
    logs.add_argument("target", help=f"{TARGET_HELP}, supervisor, prepare-database or access")
    logs.add_argument("-n", "--lines", type=int, default=40)
    add("down", help="stop every process of the lab")
    manage = add(
        "manage", help="a Django command in the lab's environment (e.g. seed_catalog 1500)"
    )
    manage.add_argument("arguments", nargs=argparse.REMAINDER, help="manage.py's arguments")
    fill = add("fill-cart", help="add cart lines as `demo` until N, or until the shop refuses")
    fill.add_argument("--lines", type=int, default=1400, help="lines to add (default: 1400)")
    add("doctor", help="which nginx / Redis / PostgreSQL binaries and versions")
    render = add(
        "render", help="write deploy/'s nginx and Redis configs (and deploy/.env if missing)"
    )
    render.add_argument("--target", required=True, choices=["compose"])
    render.add_argument("--mode", choices=MODE_NAMES, help="also set SESSION_MODE in deploy/.env")
    render.add_argument("--affinity", choices=AFFINITIES, help="sticky mode only (default: cookie)")
    render.add_argument("--instances", type=int, help="must match deploy/docker-compose.yml")
    render.add_argument(
        "--port",
        type=int,
        help="publish the shop on this port of 127.0.0.1 (LAB_PORT; default 8080)",
    )

    experiment = add(
        "experiment", help="run a fault scenario per mode while Locust shops; write a report"
    )
    experiment.add_argument("--modes", default="all", help="all, or a list like sticky,redis")
    experiment.add_argument("--scenario", default="kill-one", choices=SCENARIOS)
    experiment.add_argument("--users", type=int, default=30, help="simulated users (default: 30)")
    experiment.add_argument(
        "--duration", type=int, default=40, help="seconds per mode (default: 40)"
    )
    experiment.add_argument("--instances", type=int, default=3)
    experiment.add_argument("--affinity", choices=AFFINITIES, default="cookie", help="for sticky")
    experiment.add_argument("--db", choices=DATABASES, default="sqlite")
    experiment.add_argument("--redis-persistence", choices=REDIS_PERSISTENCE, default="none")
    experiment.add_argument(
        "--replication",
        choices=REPLICATION,
        default="async",
        help="replicated mode: sync makes each save wait for a replica (default: async)",
    )
    experiment.add_argument("--seed", type=int, default=1234)
    experiment.add_argument(
        "--conditional-writes",
        action="store_true",
        help="shoppers send If-Match with the cart's ETag: a stale (late) write gets 412",
    )
    experiment.add_argument(
        "--driver",
        choices=DRIVERS,
        default="native",
        help="native processes (default) or docker compose (deploy/docker-compose.yml)",
    )
    experiment.add_argument("--port", type=int, default=8080, help="nginx port (default: 8080)")
    experiment.add_argument(
        "--out", type=Path, help="results folder (default: results/TIME-SCENARIO)"
    )

    attack = add("attack", help="replay cookies and tokens after logout, forge tokens: per mode")
    attack.add_argument(
        "--mode", default="", help="all, or one mode (default: the running lab's mode)"
    )
    attack.add_argument("--port", type=int, default=8080, help="nginx port for labs it starts")

    bench = add("bench", help="requests/s and latency per mode, as ratios to a no-session page")
    bench.add_argument("--modes", default="all", help="all, or a list like sticky,redis")
    bench.add_argument("--duration", type=int, default=15, help="seconds per page (default: 15)")
    bench.add_argument("--connections", type=int, default=32, help="wrk connections (default: 32)")
    bench.add_argument("--port", type=int, default=8080, help="nginx port (default: 8080)")
    bench.add_argument("--out", type=Path, help="results folder (default: results/TIME-bench)")
    return parser


def attack(args: argparse.Namespace) -> int:
    from sessions_lab.attack import run_attacks, table

    cluster = Cluster(args.run_dir)
    if not args.mode:
        if not cluster.is_running():
            raise LabError("no lab is running: `sessions-lab up --mode M` first, or pass --mode")
        state = cluster.status()
        results = {state["mode"]: run_attacks(state["url"].rstrip("/"), state["mode"])}
    else:
        modes = list(MODE_NAMES) if args.mode == "all" else [args.mode]
        unknown = [m for m in modes if m not in MODE_NAMES]
        if unknown:
            raise LabError(f"unknown mode {unknown[0]}: use all or one of {', '.join(MODE_NAMES)}")
        results = {}
        for mode in modes:
            state = cluster.up(mode, instances=3, port=args.port)
            try:
                results[mode] = run_attacks(state["url"].rstrip("/"), mode)
            finally:
                cluster.down()
    print(table(results))
    return 0


def bench(args: argparse.Namespace) -> int:
    from sessions_lab.bench.run import bench as run_bench
    from sessions_lab.bench.run import markdown
    from sessions_lab.bench.wrk import WrkMissingError
    from sessions_lab.experiments.runner import default_out_dir, parse_modes

    if not 1 <= args.duration <= 600 or not 1 <= args.connections <= 1000:
        raise LabError("--duration must be 1..600 seconds and --connections 1..1000")
    out = args.out or default_out_dir("bench")
    try:
        result = run_bench(
            parse_modes(args.modes),
            duration=args.duration,
            connections=args.connections,
            port=args.port,
            run_dir=args.run_dir,
            out=out,
        )
    except WrkMissingError as error:
        raise LabError(str(error)) from None
    print()
    print(markdown(result))
    print(f"Figures: {out / 'bench.json'}")
    return 0


def experiment(args: argparse.Namespace) -> int:
    # Imported here: the experiment modules are not needed by the other commands.
    from sessions_lab.experiments.report import markdown
    from sessions_lab.experiments.runner import (
        Experiment,
        ExperimentError,
        default_out_dir,
        parse_modes,
    )
    from sessions_lab.experiments.scenarios import get_scenario

    if not 1 <= args.users <= 500 or not 5 <= args.duration <= 3600:
        raise LabError("--users must be 1..500 and --duration 5..3600 seconds")
    out = args.out or default_out_dir(args.scenario)
    run = Experiment(
        scenario=get_scenario(args.scenario),
        modes=parse_modes(args.modes),
        users=args.users,
        duration=args.duration,
        instances=args.instances,
        affinity=args.affinity,
        db=args.db,
        redis_persistence=args.redis_persistence,
        replication=args.replication,
        seed=args.seed,
        conditional_writes=args.conditional_writes,
        port=args.port,
        out=out,
        run_dir=args.run_dir,
        driver=args.driver,
    )
    try:
        summary = run.run()
    except ExperimentError as error:
        raise LabFailure(f"{error} (partial results in {out})") from None
    except KeyboardInterrupt:
        print(f"interrupted: the cluster is down; partial results in {out}", file=sys.stderr)
        return 130
    print()
    print(markdown(summary))
    print(f"Report: {out / 'report.html'}  (and report.md, summary.json)")
    for mode, result in summary["modes"].items():
        if result["verdict"] == "unexpected":
            why = result.get("verdict_reason") or "it did not behave as predicted"
            print(f"unexpected: {mode}: {why}", file=sys.stderr)
    return 0


def print_up(state: dict[str, Any]) -> None:
    apps = [p for p in state["processes"] if p["role"] == "app"]
    print(
        f"sessions lab is up: {state['url']}  (mode {state['mode']}, {len(apps)} instances, "
        f"affinity {state['affinity']}, db {state['db']})"
    )
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


def run(args: argparse.Namespace) -> int:
    cluster = Cluster(args.run_dir)
    if args.command == "up":
        state = cluster.up(
            mode=args.mode,
            instances=args.instances,
            affinity=args.affinity,
            db=args.db,
            port=args.port,
            redis_persistence=args.redis_persistence,
            demo_users=args.demo_users,
            replication=args.replication,
        )
        print_up(state)
    elif args.command == "status":
        state = cluster.status()
        if args.json:
            print(json.dumps(state, indent=2))
        else:
            print_status(state)
    elif args.command == "kill":
        print(cluster.kill(args.target, args.signal))
    elif args.command in ("start", "restart", "drain"):
        print(getattr(cluster, args.command)(args.target))
    elif args.command == "logs":
        print(tail(cluster.log_path(args.target), args.lines))
    elif args.command == "down":
        print(cluster.down())
    elif args.command == "doctor":
        return doctor()
    elif args.command == "manage":
        arguments = list(args.arguments)
        if "--run-dir" in arguments[:-1]:  # after the command, yet the lab's, not Django's
            at = arguments.index("--run-dir")
            cluster = Cluster(arguments[at + 1])
            del arguments[at : at + 2]
        if not arguments:
            raise LabError("say which command: `sessions-lab manage seed_catalog 1500`")
        cluster.manage(*arguments, capture=False)
    elif args.command == "fill-cart":
        from sessions_lab.shop_commands import describe, fill_cart

        if not 1 <= args.lines <= 5000:
            raise LabError("--lines must be 1..5000")
        print(
            describe(
                fill_cart(cluster, args.lines, os.environ.get("DEMO_PASSWORD", "demo-password"))
            )
        )
    elif args.command == "experiment":
        return experiment(args)
    elif args.command == "attack":
        return attack(args)
    elif args.command == "bench":
        return bench(args)
    elif args.command == "render":
        return render_compose(args)
    return 0


def render_compose(args: argparse.Namespace) -> int:
    # Imported here: PyYAML and the compose helpers serve this command only.
    from sessions_lab.cluster.compose_files import prepare_deploy

    written = prepare_deploy(args.mode, args.affinity, args.instances, port=args.port)
    folders = sorted({str(path.parent) for path in written if path.suffix == ".conf"})
    print(f"rendered {len(written) - 1} configurations into {', '.join(folders)}")
    print(f"settings and keys: {written[-1]}")
    print("start: docker compose -f deploy/docker-compose.yml up --build --wait")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except LabError as error:
        print(f"sessions-lab: {error}", file=sys.stderr)
        return 2
    except LabFailure as error:
        print(f"sessions-lab: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sessions-lab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
