"""Redis down in `redis` mode, through nginx: every session request says 503 and why; the rest
answers (the health check, the catalog)."""

from __future__ import annotations

import pytest
import requests

from tests.cluster.lab import Lab, Shopper

pytestmark = pytest.mark.cluster


def test_with_redis_down_session_requests_say_503_and_the_instances_stay_in_rotation(
    make_lab,
) -> None:
    lab: Lab = make_lab("--mode", "redis", "--instances", "3")
    shopper = Shopper(lab, "redis")
    shopper.login("user1")
    assert shopper.put_item(1, 2).status_code == 200

    lab.cli("kill", "redis", "--signal", "KILL")

    # More requests than instances: a 503 counted as a failure would have
    # taken each instance out of rotation, and nginx would answer 502.
    for _ in range(6):
        answer = shopper.call("GET", "/api/cart/")
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"]
        assert "session store" in answer.json()["detail"].lower()
        assert requests.get(f"{lab.url}/healthz", timeout=10).status_code == 200
        assert requests.get(f"{lab.url}/api/products/", timeout=10).status_code == 200

    lab.cli("start", "redis")
    # Redis came back empty (no persistence): the session is gone, and the
    # shop says so by answering as it would a stranger.
    assert shopper.call("GET", "/api/cart/").json()["items"] == []
