"""Shoppers against one real shop in ``db`` mode: a healthy run, then a wiped session table."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.loadtests.locust_runs import (
    assert_healthy_run,
    request_count,
    run_locust_until,
    start_locust,
    stop_locust,
    wait_until,
)
from tests.loadtests.shop_server import Shop, running_shop

SHOPPERS = 3  # of 4 users, at the 3:1 weights of the locustfile


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    with running_shop("db", tmp_path_factory.mktemp("shop-db")) as shop:
        yield shop


def wipe_sessions(database: Path) -> int:
    """Delete every session row, as a store wiped under a running shop would."""
    with sqlite3.connect(database, timeout=20) as connection:
        return connection.execute("DELETE FROM django_session").rowcount


def logins(out: Path) -> int:
    return request_count(out, "POST", "/api/session/login/")


def test_a_healthy_run_shops_and_loses_no_session(shop: Shop, tmp_path: Path) -> None:
    run = run_locust_until(
        shop.url, tmp_path, lambda: logins(tmp_path) >= SHOPPERS and request_count(tmp_path) > 80
    )

    assert_healthy_run(run, "session")
    stats = run.stats()
    assert int(stats["POST", "/api/session/login/"]["Request Count"]) == SHOPPERS
    assert int(stats["PUT", "/api/cart/items/[id]/"]["Request Count"]) > 0


def test_wiped_sessions_are_counted_as_lost_once_per_shopper(shop: Shop, tmp_path: Path) -> None:
    process = start_locust(shop.url, tmp_path, duration="60s")
    try:
        wait_until(lambda: logins(tmp_path) >= SHOPPERS, process, deadline_s=30)
        wiped_at = time.time()
        wiped = wipe_sessions(shop.database)
        before = request_count(tmp_path)
        # Each shopper takes some 20 steps in 100 requests; about one in three shows
        # whether it is still logged in, so every one of them has found out by then.
        wait_until(lambda: request_count(tmp_path) > before + 100, process, deadline_s=30)
    finally:
        run = stop_locust(process, tmp_path)

    assert wiped >= SHOPPERS
    assert run.returncode == 1, run.log  # Locust's own code for "some requests failed"
    failures = run.failures()
    assert failures["logged_out"] + failures["cart_mismatch"] > 0
    # Stopped by SIGTERM, Locust still writes its totals: the timeline's counts.
    assert run.totals["requests"] == run.requests()
    assert run.totals["failures"] == sum(failures.values())
    assert failures["http_5xx"] == failures["connection"] == failures["csrf"] == 0, failures
    assert failures["unexpected"] == 0, failures
    assert {row["Error"] for row in run.failure_rows()} <= {
        "CatchResponseError('logged_out')",
        "CatchResponseError('cart_mismatch')",
    }
    shoppers = [record for record in run.users if record["kind"] == "session"]
    assert len(shoppers) == SHOPPERS
    for record in shoppers:
        assert record["lost"] is True, record
        assert record["first_loss_at"] >= wiped_at, record
        # Found once, then repaired: logged in again with the cart put back.
        assert record["losses"]["logged_out"] + record["losses"]["cart_mismatch"] == 1, record
        assert record["loss_instances"] == ["app1"], record
    assert int(run.stats()["POST", "/api/session/login/"]["Request Count"]) == 2 * SHOPPERS


def test_every_checkout_carries_a_key_and_the_users_file_names_the_orders_stored(
    shop: Shop, tmp_path: Path
) -> None:
    """The order audit's shopper side: each 201's order, total and key, as the database has them."""
    run = run_locust_until(
        shop.url, tmp_path, lambda: request_count(tmp_path, "POST", "/api/checkout/") >= 2
    )
    told = {order["order"]: order for user in run.users for order in user["orders"]}
    assert told, run.log()
    with sqlite3.connect(shop.database, timeout=20) as connection:
        stored = dict(
            connection.execute(
                "SELECT o.id, k.key FROM shop_order o JOIN shop_checkoutkey k ON k.order_id = o.id"
            ).fetchall()
        )
        totals = dict(connection.execute("SELECT id, total FROM shop_order").fetchall())
    for order_id, order in told.items():
        assert stored[order_id] == order["key"] and len(order["key"]) == 32
        assert f"{float(totals[order_id]):.2f}" == order["total"]
    # A key no 201 acknowledged stays listed; here every checkout was answered.
    assert all(user["checkouts_unacknowledged"] == [] for user in run.users)
