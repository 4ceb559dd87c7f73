"""What a SIGKILLed instance costs the shoppers of ``sessions-lab bench``: failed requests, and orders.

Cart reads and writes from four threads, checkouts from a fifth, while one
instance is killed; then the orders the database holds are audited against
those the client was told about (``order_audit``).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from sessions_lab import order_audit as orders
from sessions_lab.cluster.cluster import Cluster
from sessions_lab.cluster.errors import LabError
from sessions_lab.shop_client import Client

WRITE_PRODUCT = 7
# How many times the kill measurement's client sends one checkout (one key) before giving up.
CHECKOUT_ATTEMPTS = 3


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
