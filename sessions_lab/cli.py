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

from sessions_lab.cluster.cluster import Cluster, LabError, LabFailure
from sessions_lab.cluster.config import (
    AFFINITIES,
    DATABASES,
    REDIS_PERSISTENCE,
    REPLICATION,
    ShopOptions,
)
from sessions_lab.cluster.control import SIGNALS, tail
from sessions_lab.cluster.driver import DRIVERS
from sessions_lab.console import doctor, print_status, print_up
from sessions_lab.experiments.load import MAX_LOAD_WORKERS
from sessions_lab.experiments.scenarios import SCENARIOS
from sessions_lab.mode_settings import CART_STORES
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
        "render",
        help="write deploy/'s nginx and Redis configs (and deploy/.env if missing), "
        "or deploy/k8s/ and an overlay's keys",
    )
    render.add_argument("--target", required=True, choices=["compose", "k8s"])
    render.add_argument(
        "--mode",
        choices=MODE_NAMES,
        help="also set SESSION_MODE in deploy/.env; k8s: the overlay to write lab.env for",
    )
    render.add_argument("--affinity", choices=AFFINITIES, help="sticky mode only (default: cookie)")
    render.add_argument("--instances", type=int, help="must match deploy/docker-compose.yml")
    render.add_argument(
        "--port",
        type=int,
        help="publish the shop on this port of 127.0.0.1 (LAB_PORT; default 8080)",
    )

    experiment = add(
        "experiment",
        help="run a fault scenario per mode while Locust shops; write a report",
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
        "--load-workers", type=int, default=1, metavar="N",
        help="run Locust as a master and N worker processes (default: 1 process, one core)",
    )  # fmt: skip
    experiment.add_argument(
        "--conditional-writes",
        action="store_true",
        help="shoppers send If-Match with the cart's ETag: a stale (late) write gets 412",
    )
    experiment.add_argument(
        "--driver",
        choices=DRIVERS,
        default="native",
        help="native processes (default), docker compose, or kubernetes (kubectl; --db postgres)",
    )
    experiment.add_argument("--port", type=int, default=8080, help="nginx port (default: 8080)")
    experiment.add_argument(
        "--out", type=Path, help="results folder (default: results/TIME-SCENARIO)"
    )

    attack = add(
        "attack",
        help="replay cookies and tokens after logout, forge tokens, read stored sessions: per mode",
    )
    attack.add_argument(
        "--mode", default="", help="all, or one mode (default: the running lab's mode)"
    )
    attack.add_argument("--port", type=int, default=8080, help="nginx port for labs it starts")

    bench = add(
        "bench",
        help="requests/s and latency per mode, as ratios to a no-session page",
    )
    bench.add_argument("--modes", default="all", help="all, or a list like sticky,redis")
    bench.add_argument("--duration", type=int, default=15, help="seconds per page (default: 15)")
    bench.add_argument("--connections", type=int, default=32, help="wrk connections (default: 32)")
    bench.add_argument("--port", type=int, default=8080, help="nginx port (default: 8080)")
    bench.add_argument(
        "--db",
        choices=DATABASES,
        default="sqlite",
        help="the shop's database (default: sqlite); with postgres, the modes that keep state "
        "in it are measured with synchronous_commit on, then off",
    )
    bench.add_argument("--out", type=Path, help="results folder (default: results/TIME-bench)")
    for command in (up, experiment, bench, attack):
        add_shop_options(command)
    return parser


def add_shop_options(command: argparse.ArgumentParser) -> None:
    """What the shop does with its state in any mode (``ShopOptions``): one group, last."""
    shop = command.add_argument_group("shop options (any mode)")
    shop.add_argument(
        "--cart-store",
        choices=CART_STORES,
        default="session",
        help="where a logged-in user's cart lives: in the session, saved whole (default), "
        "or rows: database rows per line in every mode (no lost updates)",
    )
    shop.add_argument(
        "--encrypt-sessions",
        action="store_true",
        help="encrypt every stored session (Fernet) under the run folder's key",
    )
    shop.add_argument(
        "--session-idle",
        type=seconds,
        metavar="S",
        help="log a user out after S seconds without a request "
        "(default: two days after the session last changed)",
    )
    shop.add_argument(
        "--session-absolute",
        type=seconds,
        metavar="S",
        help="log a user out S seconds after their login, however active (default: never)",
    )


def seconds(text: str) -> int:
    """A timeout on the command line: a whole, positive number of seconds."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds, 1 or more")
    return int(text)


def shop_options(args: argparse.Namespace) -> ShopOptions:
    return ShopOptions(
        cart_store=args.cart_store,
        encrypt_sessions=args.encrypt_sessions,
        session_idle=args.session_idle,
        session_absolute=args.session_absolute,
    )


def attack(args: argparse.Namespace) -> int:
    from sessions_lab.attack import run_attacks, table

    cluster = Cluster(args.run_dir)
    if not args.mode:
        if not cluster.is_running():
            raise LabError("no lab is running: `sessions-lab up --mode M` first, or pass --mode")
        if shop_options(args) != ShopOptions():
            raise LabError(
                "shop options apply to the labs `attack --mode M` starts; the running lab keeps "
                "the ones it was started with (`up … --encrypt-sessions`)"
            )
        state = cluster.status()
        results = {
            state["mode"]: run_attacks(
                state["url"].rstrip("/"), state["mode"], run_dir=args.run_dir
            )
        }
    else:
        modes = list(MODE_NAMES) if args.mode == "all" else [args.mode]
        unknown = [m for m in modes if m not in MODE_NAMES]
        if unknown:
            raise LabError(f"unknown mode {unknown[0]}: use all or one of {', '.join(MODE_NAMES)}")
        results = {}
        for mode in modes:
            state = cluster.up(mode, instances=3, port=args.port, shop=shop_options(args))
            try:
                results[mode] = run_attacks(state["url"].rstrip("/"), mode, run_dir=args.run_dir)
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
            db=args.db,
            run_dir=args.run_dir,
            out=out,
            shop=shop_options(args),
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
    if not 1 <= args.load_workers <= MAX_LOAD_WORKERS:
        raise LabError(f"--load-workers must be 1..{MAX_LOAD_WORKERS}")
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
        shop=shop_options(args),
        seed=args.seed,
        conditional_writes=args.conditional_writes,
        port=args.port,
        out=out,
        run_dir=args.run_dir,
        driver=args.driver,
        load_workers=args.load_workers,
    )
    refusal = run.refusal()
    if refusal:
        raise LabError(refusal)
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
            shop=shop_options(args),
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
        return render_k8s(args) if args.target == "k8s" else render_compose(args)
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


def render_k8s(args: argparse.Namespace) -> int:
    from sessions_lab.cluster.k8s_files import prepare_k8s

    compose_only = [
        f"--{name}" for name in ("affinity", "instances", "port") if getattr(args, name)
    ]
    if compose_only:
        raise LabError(f"{', '.join(compose_only)}: --target compose only")
    if args.mode is None:
        raise LabError("--target k8s needs --mode: the overlay whose keys to write")
    written = prepare_k8s(args.mode)
    overlay = written[-1].parent
    print(f"rendered {len(written) - 1} files into {overlay.parent.parent}")
    print(f"keys: {written[-1]}")
    print(f"apply: kubectl apply -k {overlay}")
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
