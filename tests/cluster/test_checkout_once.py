"""A checkout's instance SIGKILLed mid-checkout, through nginx and real processes.

A lab-only delay (``LAB_CHECKOUT_DELAY_S``) holds each checkout open with its
order written but not committed; the test kills the instance holding it.
With an ``Idempotency-Key`` nginx re-sends the checkout to another instance
and the client gets its 201 once, with one order in the database. Without a
key nginx never re-sends a POST: the client gets a 502 and no order exists
(the killed transaction rolled back) -- what the key is for.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import pytest
import requests

from sessions_lab.waiting import wait_until
from tests.cluster.lab import Lab, Shopper

pytestmark = pytest.mark.cluster

HELD = re.compile(r"checkout of order \d+ held")


@pytest.fixture
def slow_checkout_lab(make_lab, monkeypatch: pytest.MonkeyPatch) -> Lab:
    # The instances inherit `up`'s environment (apps.app_env).
    monkeypatch.setenv("LAB_CHECKOUT_DELAY_S", "3")
    return make_lab("--mode", "redis", "--instances", "3")


def holding_instance(lab: Lab) -> str | None:
    """The instance whose log says it holds a checkout open."""
    for log in sorted((lab.run_dir / "logs").glob("app*.log")):
        if HELD.search(log.read_text(errors="replace")):
            return log.stem
    return None


def orders_in_database(lab: Lab) -> int:
    done = lab.cli(
        "manage", "shell", "-c", "from shop.models import Order; print(Order.objects.count())"
    )
    return int(done.stdout.strip().splitlines()[-1])


def checkout_while_killing(lab: Lab, key: str | None) -> tuple[requests.Response, str]:
    shopper = Shopper(lab, "redis")
    shopper.login("user1")
    assert shopper.put_item(1, 2).status_code == 200
    headers = {"X-CSRFToken": shopper.http.cookies.get("csrftoken", "")}
    if key is not None:
        headers["Idempotency-Key"] = key
    answer: dict[str, Any] = {}

    def post() -> None:
        answer["response"] = shopper.http.post(
            f"{lab.url}/api/checkout/", headers=headers, timeout=30
        )

    client = threading.Thread(target=post)
    client.start()
    assert wait_until(lambda: holding_instance(lab) is not None, 15), "no checkout was held"
    killed = holding_instance(lab)
    assert killed is not None
    lab.cli("kill", killed)
    client.join(timeout=30)
    assert not client.is_alive()
    return answer["response"], killed


@pytest.mark.timeout(120)
def test_a_keyed_checkout_survives_its_instance_and_places_one_order(
    slow_checkout_lab: Lab,
) -> None:
    lab = slow_checkout_lab
    response, killed = checkout_while_killing(lab, "checkout-1")
    assert response.status_code == 201, response.text
    assert response.headers["X-Served-By"] != killed  # re-sent by nginx to another instance
    assert "Idempotent-Replayed" not in response.headers  # the killed one never committed
    assert orders_in_database(lab) == 1
    lines = (lab.run_dir / "logs" / "nginx-access.jsonl").read_text().splitlines()
    checkouts = [json.loads(line) for line in lines if "POST /api/checkout/" in line]
    assert [c["upstream_addr"].count(",") for c in checkouts] == [1]  # sent twice, answered once


@pytest.mark.timeout(120)
def test_without_a_key_the_checkout_is_lost_with_its_instance(slow_checkout_lab: Lab) -> None:
    lab = slow_checkout_lab
    response, _ = checkout_while_killing(lab, None)
    assert response.status_code == 502, response.text  # nginx never re-sends a plain POST
    assert orders_in_database(lab) == 0  # and the killed transaction placed nothing
