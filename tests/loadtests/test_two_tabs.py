"""Two tabs of one shopper against one real shop (``db`` mode, four threads): lost updates.

The session is saved whole, so two requests that change the cart at once
both load the same cart and the last save wins: acknowledged updates go
missing. With ``CART_STORE=rows`` each write changes only its own row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.loadtests.locust_runs import request_count, run_locust_until
from tests.loadtests.shop_server import running_shop

TWO_TABS = ("--tabs", "2", "Shopper")


def totals(records: list[dict[str, Any]]) -> tuple[int, int]:
    return (
        sum(record["updates_acknowledged"] for record in records),
        sum(record["lost_updates"] for record in records),
    )


def run_two_tabs(cart_store: str, folder: Path) -> list[dict[str, Any]]:
    out = folder / "locust"
    with running_shop("db", folder, {"CART_STORE": cart_store}) as shop:
        run = run_locust_until(
            shop.url, out, lambda: acknowledged(out) >= 60,
            extra=TWO_TABS,
        )  # fmt: skip
    assert run.failures().total() == 0, run.failures()
    assert {record["kind"] for record in run.users} == {"session"}  # shoppers only
    return run.users


def acknowledged(out: Path) -> int:
    """Cart writes so far (the users file is written at the end, the stats every second)."""
    return request_count(out, "PUT", "/api/cart/items/[id]/")


@pytest.mark.cluster
def test_two_tabs_lose_updates_when_the_cart_is_saved_whole(tmp_path: Path) -> None:
    acknowledged_updates, lost = totals(run_two_tabs("session", tmp_path))

    assert acknowledged_updates > 0
    assert 0 < lost < acknowledged_updates


@pytest.mark.cluster
def test_two_tabs_lose_nothing_when_the_cart_is_rows(tmp_path: Path) -> None:
    acknowledged_updates, lost = totals(run_two_tabs("rows", tmp_path))

    assert acknowledged_updates > 0
    assert lost == 0
