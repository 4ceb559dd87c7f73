"""``sessions-lab bench``: what each mode costs per request, and what a dead instance costs.

For each mode, against the real cluster (nginx + N instances): requests/s
and p50/p99 of (a) ``/healthz``, which never touches the session, (b) the
cart read of a logged-in user with a 5-item cart, (c) a cart write of that
user — all with wrk, all through the same nginx. Every figure is also a
ratio to (a) of the same run: the machine is noisy, ratios are what hold.
Each ratio is the median of interleaved rounds, given with the lowest and
highest round. Then the bytes of session state each request carries, the
session engine alone in µs, and the requests and orders a SIGKILLed
instance costs (``bench/kill.py``). With ``--db postgres``, a mode that keeps
its state in the database has its pages measured twice on the same lab:
with ``synchronous_commit`` on, PostgreSQL's default, then off.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sessions_lab.bench import wrk
from sessions_lab.bench.kill import WRITE_PRODUCT, measure_kill
from sessions_lab.cluster import postgres
from sessions_lab.cluster.apps import app_env, database_url
from sessions_lab.cluster.cluster import Cluster
from sessions_lab.cluster.config import REPLICATION, ShopOptions
from sessions_lab.modes import MODE_NAMES, StoreServer, get_mode
from sessions_lab.shop_client import Client

# Each page is measured in this many interleaved rounds (see measure_pages).
ROUNDS = 5
WARM_UP_SECONDS = 1
# Logged-in users whose sessions the requests take in turn: enough for
# sticky affinity to spread them over every instance.
USERS = 6
# measure_engine's own database on the lab's PostgreSQL.
ENGINE_DATABASE = "bench"


def measure_pages(clients: list[Client], duration: int, connections: int) -> dict[str, Any]:
    """The three pages in turn, ``ROUNDS`` times over, each request taking the next user's session.

    A 2-core machine has slow moments. Measured one after the other for the
    whole duration, a slow moment lands on one page and skews its ratio;
    interleaved in rounds, each ratio is taken between figures seconds apart.
    The median round's ratio is reported, with the lowest and highest round
    (``ratio_spread``) and every round's figures (``per_round``). A short
    warm-up first (discarded) opens the connections and runs each code path
    once in every worker. Each write sets another quantity than the one
    before it, so every write changes the cart and is saved.
    """
    base_url = clients[0].base
    write_headers = [{**c.headers(write=True), "Content-Type": "application/json"} for c in clients]
    pages: dict[str, dict[str, Any]] = {
        "healthz": {"url": base_url + "/healthz"},
        "cart_read": {"url": base_url + "/api/cart/", "headers": [c.headers() for c in clients]},
        "cart_write": {
            "url": base_url + f"/api/cart/items/{WRITE_PRODUCT}/",
            "method": "PUT",
            "headers": write_headers,
            # 90 quantities shared out between wrk's threads (wrk.lua_script): a user's next
            # write is always another quantity than the last, whichever thread sends it.
            "bodies": [json.dumps({"quantity": quantity}) for quantity in range(1, 91)],
        },
    }
    for page in pages.values():
        wrk.measure(**page, duration=WARM_UP_SECONDS, connections=connections)
    seconds = max(1, round(duration / ROUNDS))
    rounds: dict[str, list[wrk.Figure]] = {name: [] for name in pages}
    for _ in range(ROUNDS):
        for name, page in pages.items():
            rounds[name].append(wrk.measure(**page, duration=seconds, connections=connections))
    figures: dict[str, Any] = {name: asdict(wrk.combine(rounds[name])) for name in pages}
    ratios = {
        name: [
            round(page.rps / (health.rps or 1.0), 3)
            for page, health in zip(rounds[name], rounds["healthz"], strict=True)
        ]
        for name in ("cart_read", "cart_write")
    }
    figures["ratios"] = {name: round(statistics.median(r), 3) for name, r in ratios.items()}
    figures["ratio_spread"] = {name: [min(r), max(r)] for name, r in ratios.items()}
    figures["per_round"] = {
        "rps": {name: [figure.rps for figure in rounds[name]] for name in pages},
        "ratios": ratios,
    }
    figures["rounds"] = ROUNDS
    return figures


def measure_engine(mode: str, cluster: Cluster, seconds: float) -> dict[str, Any]:
    """The session engine alone (bench/engines.py), in a process of its own for this mode."""
    config = cluster.run.read_config()
    if config.db == "postgres":
        # A database of its own on the lab's server: the measurement's writes stay out of the shop's.
        postgres.create_database(config, time.monotonic() + 10, name=ENGINE_DATABASE)
        database = database_url(config, cluster.run, name=ENGINE_DATABASE)
    else:
        database = f"sqlite:///{cluster.run.bench_sqlite}"  # a file of its own, likewise
    env = {
        # app1's own environment (its stores: Redis, the memcached nodes, the
        # Sentinels and its replica; the run's keys), so the engine measured is
        # the one an instance runs, configured the same way.
        **app_env(config, cluster.run, "app1"),
        "DEBUG": "1",
        "DATABASE_URL": database,
    }
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "sessions_lab.bench.engines", mode, str(seconds)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout)


def keeps_state_in_database(mode: str, shop: ShopOptions) -> bool:
    """Whether a cart write commits to the database in this mode: its sessions or carts live there."""
    found = get_mode(mode)
    in_database = found.store_server is StoreServer.DATABASE or found.backed_by_database
    return in_database or shop.cart_store == "rows"


def bench(
    modes: list[str],
    *,
    duration: int,
    connections: int,
    instances: int = 3,
    port: int = 8080,
    db: str = "sqlite",
    run_dir: Path = Path(".lab"),
    out: Path,
    shop: ShopOptions | None = None,
    say: Any = print,
) -> dict[str, Any]:
    shop = shop or ShopOptions()
    wrk_version = subprocess.run(  # noqa: S603
        [wrk.wrk_path(), "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[0]
    result: dict[str, Any] = {
        # 2: a replicated mode is measured twice, "replicated" (async) and "replicated (sync)",
        # each with its "replication". 3: the shop's options (ShopOptions). 4: "db"; per mode
        # "ratio_spread" and "per_round"; on PostgreSQL, a mode keeping state in the database
        # has "synchronous_commit": "on", and its pages again as "MODE (synchronous_commit off)".
        "schema_version": 4,
        "generator": wrk_version.split(" [")[0],
        "duration_s": duration,
        "connections": connections,
        "instances": instances,
        "db": db,
        **asdict(shop),
        "cores": os.cpu_count(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "modes": {},
    }
    out.mkdir(parents=True, exist_ok=True)
    for mode, replication in runs(modes):
        name = mode if replication == "async" else f"{mode} ({replication})"
        say(f"[{name}] starting {instances} instances")
        cluster = Cluster(run_dir)
        state = cluster.up(
            mode,
            instances=instances,
            port=port,
            db=db,
            demo_users=10,
            replication=replication,
            shop=shop,
        )
        measured: dict[str, dict[str, Any]] = {}
        try:
            clients = [
                Client(state["url"].rstrip("/"), get_mode(mode).is_jwt) for _ in range(USERS)
            ]
            for number, client in enumerate(clients, start=1):
                client.log_in(f"user{number}", os.environ.get("DEMO_PASSWORD", "demo-password"))
            client = clients[0]
            figures = measured[name] = measure_pages(clients, duration, connections)
            if db == "postgres" and keeps_state_in_database(mode, shop):
                figures["synchronous_commit"] = "on"
                with postgres.synchronous_commit_off(cluster.run.read_config()):
                    off = measured[f"{name} (synchronous_commit off)"] = measure_pages(
                        clients, duration, connections
                    )
                off["synchronous_commit"] = "off"
            figures["users"] = USERS
            figures["session_bytes"] = client.session_bytes()
            figures["engine"] = measure_engine(mode, cluster, min(duration, 3))
            figures["kill"] = measure_kill(client, cluster, clients[1])
        finally:
            cluster.down()
        for entry, figures in measured.items():
            if get_mode(mode).uses_replication:
                figures["replication"] = replication
            result["modes"][entry] = figures
            say(f"[{entry}] {summary_line(figures)}")
        (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "bench.md").write_text(markdown(result))
    return result


def summary_line(figures: dict[str, Any]) -> str:
    """One mode's figures in a line: each ratio is the median round's, with the rounds' range."""

    def page(name: str) -> str:
        low, high = figures["ratio_spread"][name]
        return (
            f"{figures[name]['rps']:.0f}/s ({figures['ratios'][name]:.2f}×, "
            f"rounds {low:.2f}–{high:.2f})"
        )

    return (
        f"healthz {figures['healthz']['rps']:.0f}/s, cart read {page('cart_read')}, "
        f"cart write {page('cart_write')}"
    )


def markdown(result: dict[str, Any]) -> str:
    database = {"postgres": "PostgreSQL", "sqlite": "SQLite"}.get(result.get("db", "sqlite"))
    lines = [
        f"{result['generator']}, {result['connections']} connections, {result['duration_s']} s a page "
        f"in {ROUNDS} interleaved rounds, "
        f"{result['instances']} instances behind nginx, {database}, {result['cores']} cores"
        + "".join(f", {option}" for option in [ShopOptions.from_dict(result).describe()] if option),
        "",
        "Ratios to /healthz: the median round's, and (in brackets) the lowest and highest round's.",
        "",
        "| mode | /healthz req/s | cart read req/s (×healthz) | p50 / p99 ms | cart write req/s (×healthz) | p50 / p99 ms | session bytes/request | engine µs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode, m in result["modes"].items():
        engine = m.get("engine", {})
        lines.append(
            f"| {mode} | {m['healthz']['rps']:.0f} "
            f"| {m['cart_read']['rps']:.0f} ({_ratio(m, 'cart_read')}) "
            f"| {m['cart_read']['p50_ms']:.1f} / {m['cart_read']['p99_ms']:.1f} "
            f"| {m['cart_write']['rps']:.0f} ({_ratio(m, 'cart_write')}) "
            f"| {m['cart_write']['p50_ms']:.1f} / {m['cart_write']['p99_ms']:.1f} "
            f"| {m.get('session_bytes', '—')} | {engine.get('median_us', '—')} |"
        )
    lines += [
        "",
        "| mode | GETs during kill (failed, of which cut off mid-answer) | writes during kill (failed, cut off) "
        "| checkouts during kill (failed, cut off, unrecovered) | orders acked / stored / lost / doubled "
        "| first success after the kill, ms |",
        "|---|---|---|---|---|---|",
    ]
    for mode, m in result["modes"].items():
        if "kill" not in m:  # the same lab measured again (synchronous_commit off): pages only
            continue
        k = m["kill"]
        lines.append(
            f"| {mode} | {k['gets']} ({k['gets_failed']}, {k['gets_cut_off']}) "
            f"| {k['writes']} ({k['writes_failed']}, {k['writes_cut_off']}) "
            f"| {k['checkouts']} ({k['checkouts_failed']}, {k['checkouts_cut_off']}, "
            f"{k['checkouts_unrecovered']}) "
            f"| {k['orders_acknowledged']} / {k['orders_stored']} / {k['orders_lost']} / "
            f"{k['orders_doubled']} "
            f"| {k['first_success_after_kill_ms']} |"
        )
    return "\n".join(lines) + "\n"


def _ratio(figures: dict[str, Any], page: str) -> str:
    ratio = f"{figures['ratios'][page]:.2f}"
    spread = figures.get("ratio_spread", {}).get(page)  # none before schema 4
    return f"{ratio}, {spread[0]:.2f}–{spread[1]:.2f}" if spread else ratio


def runs(modes: list[str]) -> list[tuple[str, str]]:
    """(mode, replication) per measured run: a replicated mode twice, async then sync, for
    what waiting for a replica costs a write."""
    return [
        (mode, replication)
        for mode in modes
        for replication in (REPLICATION if get_mode(mode).uses_replication else ("async",))
    ]


def parse_modes(text: str) -> list[str]:
    if text == "all":
        return list(MODE_NAMES)
    return [m.strip() for m in text.split(",") if m.strip()]
