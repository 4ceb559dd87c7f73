"""``sessions-lab bench``: what each mode costs per request, and what a dead instance costs.

For each mode, against the real cluster (nginx + N instances): requests/s
and p50/p99 of (a) ``/healthz``, which never touches the session, (b) the
cart read of a logged-in user with a 5-item cart, (c) a cart write of that
user — all with wrk, all through the same nginx. Every figure is also a
ratio to (a) of the same run: the machine is noisy, ratios are what hold.
Then the bytes of session state each request carries, the session engine
alone in µs, and the requests and orders a SIGKILLed instance costs.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sessions_lab import order_audit as orders
from sessions_lab.bench import wrk
from sessions_lab.cluster.apps import app_env
from sessions_lab.cluster.cluster import Cluster
from sessions_lab.cluster.config import REPLICATION, ShopOptions
from sessions_lab.cluster.errors import LabError
from sessions_lab.modes import MODE_NAMES, get_mode
from sessions_lab.shop_client import Client

WRITE_PRODUCT = 7
# Each page is measured in this many interleaved rounds (see measure_pages).
ROUNDS = 5
WARM_UP_SECONDS = 1
# Logged-in users whose sessions the requests take in turn: enough for
# sticky affinity to spread them over every instance.
USERS = 6
# How many times the kill measurement's client sends one checkout (one key) before giving up.
CHECKOUT_ATTEMPTS = 3


def measure_pages(clients: list[Client], duration: int, connections: int) -> dict[str, Any]:
    """The three pages in turn, ``ROUNDS`` times over, each request taking the next user's session.

    A 2-core machine has slow moments. Measured one after the other for the
    whole duration, a slow moment lands on one page and skews its ratio;
    interleaved in rounds, each ratio is taken between figures seconds apart,
    and the median round is reported. A short warm-up first (discarded) opens
    the connections and runs each code path once in every worker.
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
            "body": json.dumps({"quantity": 3}),
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
    figures["ratios"] = {
        name: round(
            statistics.median(
                page.rps / (health.rps or 1.0)
                for page, health in zip(rounds[name], rounds["healthz"], strict=True)
            ),
            3,
        )
        for name in ("cart_read", "cart_write")
    }
    figures["rounds"] = ROUNDS
    return figures


def measure_engine(mode: str, cluster: Cluster, seconds: float) -> dict[str, Any]:
    """The session engine alone (bench/engines.py), in a process of its own for this mode."""
    env = {
        # app1's own environment (its stores: Redis, the memcached nodes, the
        # Sentinels and its replica; the run's keys), so the engine measured is
        # the one an instance runs, configured the same way.
        **app_env(cluster.run.read_config(), cluster.run, "app1"),
        "DEBUG": "1",
        # A database file of its own: the measurement's writes stay out of the shop's.
        "DATABASE_URL": f"sqlite:///{cluster.run.bench_sqlite}",
    }
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "sessions_lab.bench.engines", mode, str(seconds)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout)


def answer(send: Callable[[], tuple[int, Any]]) -> tuple[int, Any, bool]:
    """What ``send`` got: its status (0: no answer), its body, and whether the answer was cut off."""
    try:
        status, body = send()
    except http.client.IncompleteRead:  # the answer had begun, then the instance died
        return 0, None, True
    except (OSError, http.client.HTTPException):  # refused, reset, no answer
        return 0, None, False
    return status, body, False


def attempt(client: Client, write: bool) -> tuple[int, bool]:
    """One cart read or write: its status (0: no answer) and whether the answer was cut off."""
    if write:
        status, _, cut_off = answer(
            lambda: client.call(
                "PUT", f"/api/cart/items/{WRITE_PRODUCT}/", {"quantity": 3}, timeout=6
            )
        )
    else:
        status, _, cut_off = answer(lambda: client.call("GET", "/api/cart/", timeout=6))
    return status, cut_off


def failed(status: int) -> bool:
    return status == 0 or status >= 500


def check_out(client: Client, key: str) -> tuple[list[tuple[int, bool]], dict[str, Any] | None]:
    """One checkout as a client makes it: sent again with the same ``key`` while it fails,
    ``CHECKOUT_ATTEMPTS`` times in all. Each attempt's status and whether it was cut off,
    and the 201's body (``{"order", "total"}``), if one came."""
    attempts: list[tuple[int, bool]] = []
    for _ in range(CHECKOUT_ATTEMPTS):
        status, body, cut_off = answer(
            lambda: client.call(
                "POST", "/api/checkout/", timeout=6, headers={"Idempotency-Key": key}
            )
        )
        attempts.append((status, cut_off))
        if not failed(status):
            return attempts, body if status == 201 and isinstance(body, dict) else None
    return attempts, None


def audit_orders(
    cluster: Cluster,
    username: str,
    since: float,
    keys: set[str],
    acknowledged: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """What the database holds for ``username`` since ``since`` (Unix time), against what the
    client was told (``order_audit.compare``: lost, doubled, charged wrong); the counts are
    None, and ``order_audit_error`` says why, when the database could not be read."""
    try:
        placed = json.loads(cluster.manage("orders_placed", "--since", str(since)))
    except (LabError, ValueError) as error:
        return orders.unread(len(acknowledged), str(error) or type(error).__name__)
    unacknowledged = keys - {order["key"] for order in acknowledged.values()}
    return orders.compare(
        acknowledged, unacknowledged, [order for order in placed if order["user"] == username]
    )


def measure_kill(
    client: Client, cluster: Cluster, checkout_client: Client, target: str = "app2"
) -> dict[str, Any]:
    """Cart GETs and PUTs from 4 threads, checkouts from a fifth (another user's), while
    ``target`` is SIGKILLed: what failed, how long, and whether an order was lost or doubled.

    nginx re-sends a GET, PUT or DELETE that the dying instance failed before
    answering (``proxy_next_upstream error timeout http_502``), and a POST only
    with ``non_idempotent``, which the lab's nginx sets for a checkout carrying
    an ``Idempotency-Key``. None can be re-sent once the instance has
    begun its answer: nginx has passed the status line on to the client, and
    the rest never comes (gunicorn writes the header and the body separately).
    Those are counted apart, as ``*_cut_off``: the client got a truncated
    answer. A failed checkout the client sends again itself, with the same key
    (``check_out``); the orders stored are then audited against those acknowledged.
    """
    stop = threading.Event()
    killed_at: list[float] = []
    counts = dict.fromkeys(
        (
            "gets", "gets_failed", "gets_cut_off", "writes", "writes_failed", "writes_cut_off",
            "checkouts", "checkouts_failed", "checkouts_cut_off", "checkouts_unrecovered",
            "checkouts_refused",
        ),
        0,
    )  # fmt: skip
    first_success_after: list[float] = []
    keys: set[str] = set()
    acknowledged: dict[str, dict[str, Any]] = {}  # order id → {"total", "key"}
    lock = threading.Lock()

    def stream(write: bool) -> None:
        deadline = time.monotonic() + 15  # bounded, whatever happens
        kind = "writes" if write else "gets"
        while not stop.is_set() and time.monotonic() < deadline:
            sent = time.monotonic()
            status, cut_off = attempt(client, write)
            with lock:
                counts[kind] += 1
                if failed(status):
                    counts[f"{kind}_failed"] += 1
                    counts[f"{kind}_cut_off"] += cut_off
                elif killed_at and sent > killed_at[0]:
                    first_success_after.append(time.monotonic() - killed_at[0])

    def checkouts() -> None:
        deadline = time.monotonic() + 15
        while not stop.is_set() and time.monotonic() < deadline:
            # Something to buy; if this fails, the checkout may find the cart empty (a 400).
            answer(
                lambda: checkout_client.call(
                    "PUT", f"/api/cart/items/{WRITE_PRODUCT}/", {"quantity": 1}, timeout=6
                )
            )
            key = uuid.uuid4().hex
            with lock:  # before it is sent: an order placed for it is never "unknown"
                keys.add(key)
            attempts, order = check_out(checkout_client, key)
            (first, cut_off), *_ = attempts
            with lock:
                counts["checkouts"] += 1
                if failed(first):
                    counts["checkouts_failed"] += 1
                    counts["checkouts_cut_off"] += cut_off
                counts["checkouts_unrecovered"] += failed(attempts[-1][0])
                if order is not None:
                    acknowledged[str(order.get("order"))] = {
                        "total": order.get("total"),
                        "key": key,
                    }
                elif not failed(attempts[-1][0]):
                    # A 4xx: in sticky mode, 401 once the session died with its instance.
                    counts["checkouts_refused"] += 1

    threads = [threading.Thread(target=stream, args=(i % 2 == 1,)) for i in range(4)]
    threads.append(threading.Thread(target=checkouts))
    started = time.time()
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # a steady stream before the fault: this is the experiment's timeline
    killed_at.append(time.monotonic())
    cluster.kill(target, "KILL")
    time.sleep(2.0)  # and after it
    stop.set()
    for thread in threads:
        thread.join(timeout=30)  # a checkout sent 3 times, each up to 6 s, after its PUT
    with lock:  # a thread still running (it should not be) changes nothing from here on
        audit = audit_orders(
            cluster, checkout_client.username, started, set(keys), dict(acknowledged)
        )
    if any(thread.is_alive() for thread in threads):
        audit["order_audit_error"] = "a client thread was still running: the audit may be short"
    cluster.start(target)
    return {
        **counts,
        **audit,
        "first_success_after_kill_ms": round(min(first_success_after) * 1000, 1)
        if first_success_after
        else None,
    }


def bench(
    modes: list[str],
    *,
    duration: int,
    connections: int,
    instances: int = 3,
    port: int = 8080,
    run_dir: Path = Path(".lab"),
    out: Path,
    shop: ShopOptions | None = None,
    say: Any = print,
) -> dict[str, Any]:
    wrk_version = subprocess.run(  # noqa: S603
        [wrk.wrk_path(), "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[0]
    result: dict[str, Any] = {
        # 2: a replicated mode is measured twice, "replicated" (async) and "replicated (sync)",
        # each with its "replication". 3: the shop's options (ShopOptions).
        "schema_version": 3,
        "generator": wrk_version.split(" [")[0],
        "duration_s": duration,
        "connections": connections,
        "instances": instances,
        **asdict(shop or ShopOptions()),
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
            demo_users=10,
            replication=replication,
            shop=shop,
        )
        try:
            clients = [
                Client(state["url"].rstrip("/"), get_mode(mode).is_jwt) for _ in range(USERS)
            ]
            for number, client in enumerate(clients, start=1):
                client.log_in(f"user{number}", os.environ.get("DEMO_PASSWORD", "demo-password"))
            client = clients[0]
            figures = measure_pages(clients, duration, connections)
            figures["users"] = USERS
            figures["session_bytes"] = client.session_bytes()
            figures["engine"] = measure_engine(mode, cluster, min(duration, 3))
            figures["kill"] = measure_kill(client, cluster, clients[1])
        finally:
            cluster.down()
        if get_mode(mode).uses_replication:
            figures["replication"] = replication
        result["modes"][name] = figures
        say(
            f"[{name}] healthz {figures['healthz']['rps']:.0f}/s, cart read "
            f"{figures['cart_read']['rps']:.0f}/s ({figures['ratios']['cart_read']:.2f}×), "
            f"cart write {figures['cart_write']['rps']:.0f}/s ({figures['ratios']['cart_write']:.2f}×)"
        )
        (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "bench.md").write_text(markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"{result['generator']}, {result['connections']} connections, {result['duration_s']} s a page "
        f"in {ROUNDS} interleaved rounds, "
        f"{result['instances']} instances behind nginx, {result['cores']} cores"
        + "".join(f", {option}" for option in [ShopOptions.from_dict(result).describe()] if option),
        "",
        "| mode | /healthz req/s | cart read req/s (×healthz) | p50 / p99 ms | cart write req/s (×healthz) | p50 / p99 ms | session bytes/request | engine µs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode, m in result["modes"].items():
        engine = m.get("engine", {})
        lines.append(
            f"| {mode} | {m['healthz']['rps']:.0f} | {m['cart_read']['rps']:.0f} ({m['ratios']['cart_read']:.2f}) "
            f"| {m['cart_read']['p50_ms']:.1f} / {m['cart_read']['p99_ms']:.1f} "
            f"| {m['cart_write']['rps']:.0f} ({m['ratios']['cart_write']:.2f}) "
            f"| {m['cart_write']['p50_ms']:.1f} / {m['cart_write']['p99_ms']:.1f} "
            f"| {m['session_bytes']} | {engine.get('median_us', '—')} |"
        )
    lines += [
        "",
        "| mode | GETs during kill (failed, of which cut off mid-answer) | writes during kill (failed, cut off) "
        "| checkouts during kill (failed, cut off, unrecovered) | orders acked / stored / lost / doubled "
        "| first success after the kill, ms |",
        "|---|---|---|---|---|---|",
    ]
    for mode, m in result["modes"].items():
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
