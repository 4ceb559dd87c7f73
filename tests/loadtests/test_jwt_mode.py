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


# An idle limit of 8 s: the refresh token lives 7 to 8 s (a JWT's exp is a whole
# second), the access token 2 s. Shoppers think up to 4 s between steps.
IDLE_S, THINK_S = 8, 4


@pytest.fixture(scope="module")
def idle_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    folder = tmp_path_factory.mktemp("shop-jwt-idle")
    with running_shop("jwt", folder, extra_env={"SESSION_IDLE_S": str(IDLE_S)}) as shop:
        yield shop


def test_a_shopper_who_keeps_shopping_outlives_its_refresh_token(
    idle_shop: Shop, tmp_path: Path
) -> None:
    # A shopper that refreshed only on a 401, at the step after it, could wait
    # 2 + 4 + 4 s for its refresh; one that reads its token's expiry before each
    # step (as a client library does) waits at most 2 + 4 s, inside the refresh
    # token's 7.
    run = run_locust_until(
        idle_shop.url,
        tmp_path,
        lambda: request_count(tmp_path, "POST", "/api/token/refresh/") >= 15,
        deadline_s=90,
        extra=("--think-time", str(THINK_S)),
    )

    assert_healthy_run(run, "jwt")  # no failure: nobody was logged out
    stats = run.stats()
    assert int(stats["POST", "/api/token/"]["Request Count"]) == 3
    # Almost every refresh came before the expired token was sent: only a token
    # that expired half-way through a step still meets a 401.
    refreshes = int(stats["POST", "/api/token/refresh/"]["Request Count"])
    refused = (idle_shop.folder / "gunicorn.log").read_text().count("Unauthorized: ")
    assert refused * 4 < refreshes, (refused, refreshes)
