"""The cookie ceiling, reached through nginx as a participant reaches it: the shop says no, not nginx."""

from __future__ import annotations

import re

import pytest
import requests

pytestmark = pytest.mark.cluster


def test_a_cookie_cart_filled_through_nginx_stops_at_the_shops_own_refusal(make_lab) -> None:
    lab = make_lab("--mode", "cookie", "--instances", "2")

    filled = lab.cli("fill-cart", "--lines", "1500")

    refusal = re.search(r"Line ([\d,]+) was refused \((\d+)\): (.*)", filled.stdout)
    assert refusal is not None, filled.stdout
    assert refusal.group(2) == "400"
    assert "browsers silently drop cookies over 4,096" in refusal.group(3)
    lines = int(refusal.group(1).replace(",", "")) - 1
    assert 1200 < lines < 1500  # past where nginx's default buffer gave up (~1,180)
    assert "upstream sent too big header" not in (lab.run_dir / "logs" / "nginx.log").read_text()

    reset = lab.cli("manage", "seed_catalog", "--reset")
    assert "sample products removed" in reset.stdout
    assert len(requests.get(f"{lab.url}/api/products/", timeout=10).json()) < 100


def test_manage_without_a_command_says_what_to_type(make_lab) -> None:
    lab = make_lab("--mode", "cookie", "--instances", "1")
    done = lab.cli("manage", check=False)
    assert done.returncode == 2
    assert "sessions-lab manage seed_catalog 1500" in done.stderr
