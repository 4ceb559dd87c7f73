"""Shoppers against one real shop in ``cookie`` mode, each presenting its own client address."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.loadtests.locust_runs import assert_healthy_run, request_count, run_locust_until
from tests.loadtests.shop_server import Shop, running_shop

# gunicorn logs the X-Forwarded-For each request arrived with, so the test can see it.
ACCESS_LOG_ARGS = ("--access-logformat", "%({x-forwarded-for}i)s %(r)s")


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    folder = tmp_path_factory.mktemp("shop-cookie")
    access_log = ("--access-logfile", str(folder / "access.log"))
    with running_shop("cookie", folder, gunicorn_args=(*access_log, *ACCESS_LOG_ARGS)) as shop:
        yield shop


def test_a_healthy_run_with_a_client_address_per_user(shop: Shop, tmp_path: Path) -> None:
    logins = lambda: request_count(tmp_path, "POST", "/api/session/login/")  # noqa: E731
    run = run_locust_until(
        shop.url,
        tmp_path,
        lambda: logins() >= 3 and request_count(tmp_path) > 80,
        extra=("--client-ip-per-user",),
    )

    assert_healthy_run(run, "session")
    requests = (shop.folder / "access.log").read_text().splitlines()
    # The fixture's own health checks come without the header.
    addresses = {line.split(" ", 1)[0] for line in requests if "/healthz" not in line}
    assert addresses == {"10.77.0.1", "10.77.0.2", "10.77.0.3", "10.77.0.4"}
