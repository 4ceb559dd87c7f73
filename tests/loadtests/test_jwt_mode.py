"""Shoppers against one real shop in ``jwt`` mode, whose access tokens expire every 2 s."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.loadtests.locust_runs import assert_healthy_run, request_count, run_locust_until
from tests.loadtests.shop_server import Shop, running_shop


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    folder = tmp_path_factory.mktemp("shop-jwt")
    with running_shop("jwt", folder, extra_env={"JWT_ACCESS_SECONDS": "2"}) as shop:
        yield shop


def test_expired_access_tokens_are_refreshed_without_a_lost_session(
    shop: Shop, tmp_path: Path
) -> None:
    # Every shopper's token expires 2 s after its login: wait for each to refresh once.
    run = run_locust_until(
        shop.url, tmp_path, lambda: request_count(tmp_path, "POST", "/api/token/refresh/") >= 3
    )

    assert_healthy_run(run, "jwt")
    stats = run.stats()
    assert int(stats["POST", "/api/token/"]["Request Count"]) == 3  # one login per shopper
    assert int(stats["POST", "/api/token/refresh/"]["Request Count"]) > 0
    assert ("POST", "/api/session/login/") not in stats
