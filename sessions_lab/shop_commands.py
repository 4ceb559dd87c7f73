"""``fill-cart``, a command a workshop runs against the shop of a running lab.

(``manage``, Django's commands in the lab's own environment, is
``Cluster.manage``.) ``fill-cart`` is the
cookie-ceiling exercise in one line: it grows the catalog if needed, then
adds one-item lines to a cart through nginx, as a browser would, until the
shop refuses one and says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from sessions_lab.cluster.cluster import Cluster
from sessions_lab.cluster.errors import LabError
from sessions_lab.modes import get_mode
from sessions_lab.shop_client import Client

DEMO_USER = "demo"


@dataclass(frozen=True)
class Filled:
    """How a cart grew: lines kept, the shop's refusal if any, and what carries the session."""

    lines: int
    refusal: str | None  # the shop's own message, when it refused a line
    status: int | None  # its HTTP status
    session_bytes: int  # the session cookie (or token) the client sends with each request


def fill_cart(cluster: Cluster, lines: int, password: str) -> Filled:
    """Log in as the demo user and add one-item lines until ``lines``, or until the shop refuses."""
    state = cluster.status()
    mode = get_mode(state["mode"])
    client = Client(state["url"].rstrip("/"), jwt=mode.is_jwt)
    client.log_in(DEMO_USER, password, cart=False)
    status, products = client.call("GET", "/api/products/")
    if status != 200:
        raise LabError(f"the product list answered {status}")
    if len(products) < lines:
        cluster.manage("seed_catalog", str(lines))
        _, products = client.call("GET", "/api/products/")
    added = 0
    for product in sorted(item["id"] for item in products)[:lines]:
        status, body = client.call("PUT", f"/api/cart/items/{product}/", {"quantity": 1})
        if status != 200:
            detail = body.get("detail") if isinstance(body, dict) else None
            return Filled(added, str(detail or body), status, client.session_bytes())
        added += 1
    return Filled(added, None, None, client.session_bytes())


def describe(filled: Filled) -> str:
    """What ``fill-cart`` prints."""
    lines = [
        f"The cart holds {filled.lines:,} lines; the session travels in {filled.session_bytes:,} bytes."
    ]
    if filled.refusal is not None:
        lines.append(f"Line {filled.lines + 1:,} was refused ({filled.status}): {filled.refusal}")
    lines.append("Put the catalog back with `sessions-lab manage seed_catalog --reset`.")
    return "\n".join(lines)
