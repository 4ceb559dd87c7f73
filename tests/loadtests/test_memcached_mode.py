"""Shoppers against one real shop in ``memcached`` mode: each records the node its session is on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.loadtests.locust_runs import assert_healthy_run, request_count, run_locust_until
from tests.loadtests.shop_server import Shop, running_shop

SHOPPERS = 3  # of 4 users, at the 3:1 weights of the locustfile


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, memcached_nodes: str) -> Iterator[Shop]:
    folder = tmp_path_factory.mktemp("shop-memcached")
    with running_shop("memcached", folder, {"MEMCACHED_SERVERS": memcached_nodes}) as shop:
        yield shop


def test_each_shopper_records_the_node_of_its_session(shop: Shop, tmp_path: Path) -> None:
    logins = lambda: request_count(tmp_path, "POST", "/api/session/login/")  # noqa: E731
    run = run_locust_until(
        shop.url, tmp_path, lambda: logins() >= SHOPPERS and request_count(tmp_path) > 80
    )

    assert_healthy_run(run, "session")
    shoppers = [record for record in run.users if record["kind"] == "session"]
    assert len(shoppers) == SHOPPERS
    for record in shoppers:
        # Logged in once, never lost: one session, so one node, named on every answer
        # that carried its key.
        assert list(record["nodes"]) == [record["last_node"]], record
        assert record["last_node"] in {"1", "2", "3"}
        assert record["loss_nodes"] == []
