"""A stand-in shop that already speaks conditional cart writes, for the shoppers to be tested on.

It answers the ``jwt`` mode's API as the real shop does (a bearer token, a
cart per account), plus the contract of conditional writes: every cart
answer carries ``ETag: "cart-<n>"`` and a write whose ``If-Match`` names
another version is refused with 412. Every ``conflict_every``-th
conditional write finds the version moved first (as a late write, applied
a second time, would move it) and so is refused; with ``lose_carts`` that
move also empties the cart, as a lost session would. It counts what it was
sent, so a test can tell whether each write named the version it was
answered last. It runs in a thread of the test's own process: no Django,
no gevent.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PRICES = {1: Decimal("4.50"), 2: Decimal("12.00"), 3: Decimal("7.25"), 4: Decimal("19.90")}
FAR_FUTURE = 4_102_444_800  # 2100: the access tokens never expire during a test


def access_token(username: str) -> str:
    """A token the shoppers can read the expiry of (``header.claims.signature``)."""
    claims = json.dumps({"exp": FAR_FUTURE, "sub": username}).encode()
    return f"h.{base64.urlsafe_b64encode(claims).decode().rstrip('=')}.s"


def token_user(authorization: str) -> str:
    try:
        payload = authorization.removeprefix("Bearer ").split(".")[1]
        return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])
    except (IndexError, KeyError, ValueError):
        return ""


@dataclass
class Cart:
    items: dict[int, int] = field(default_factory=dict)
    version: int = 0

    @property
    def etag(self) -> str:
        return f'"cart-{self.version}"'

    def body(self) -> dict[str, Any]:
        total = sum((PRICES[p] * q for p, q in self.items.items()), Decimal("0.00"))
        lines = [{"product": p, "quantity": q} for p, q in sorted(self.items.items())]
        return {"items": lines, "total": f"{total:.2f}"}


@dataclass
class EtagShop:
    url: str
    conflict_every: int
    lose_carts: bool = False
    carts: dict[str, Cart] = field(default_factory=dict)
    # writes, conditional (If-Match sent), moved (versions moved before a write), refused (412)
    counts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, username: str, if_match: str | None) -> Cart | None:
        """Count a cart write; the cart to apply it to, or None when its If-Match is refused."""
        cart = self.carts.setdefault(username, Cart())
        self.counts["writes"] += 1
        if if_match is None:
            return cart
        self.counts["conditional"] += 1
        if self.counts["conditional"] % self.conflict_every == 0:
            cart.version += 1
            self.counts["moved"] += 1
            if self.lose_carts:
                cart.items = {}
        if if_match != cart.etag:
            self.counts["refused"] += 1
            return None
        return cart


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the shoppers' client expects
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def answer(self, status: int, body: Any, etag: str = "") -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Served-By", "app1")
        self.send_header("X-Session-Mode", "jwt")
        if etag:
            self.send_header("ETag", etag)
        self.end_headers()
        self.wfile.write(data)

    def route(self, method: str) -> None:
        shop: EtagShop = self.server.shop
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        path = self.path.split("?")[0]
        user = token_user(self.headers.get("Authorization", ""))
        if method == "GET" and path == "/api/whoami/":
            return self.answer(200, {"authenticated": bool(user), "username": user})
        if method == "GET" and path == "/api/products/":
            return self.answer(200, [{"id": p, "price": str(v)} for p, v in PRICES.items()])
        if method == "POST" and path == "/api/token/":
            return self.answer(200, {"access": access_token(body["username"]), "refresh": "r"})
        if method == "GET" and not path.startswith("/api/"):
            return self.answer(200, "<html>a page</html>")
        if not user:
            return self.answer(401, {"detail": "Authentication credentials were not provided."})
        if not (path.startswith("/api/cart/") or path == "/api/checkout/"):
            return self.answer(404, {"detail": "Not found."})
        with shop.lock:
            self.cart_request(shop, method, path, user, body)

    def cart_request(self, shop: EtagShop, method: str, path: str, user: str, body: Any) -> None:
        if method == "GET" and path == "/api/cart/":
            cart = shop.carts.setdefault(user, Cart())
            return self.answer(200, cart.body(), cart.etag)
        cart = shop.write(user, self.headers.get("If-Match"))
        if cart is None:
            current = shop.carts[user]
            return self.answer(412, {"detail": "The cart has changed."}, current.etag)
        if path.startswith("/api/cart/items/"):
            product = int(path.split("/")[-2])
            quantity = int(body.get("quantity", 0)) if method == "PUT" else 0
            cart.items = {**cart.items, product: quantity} if quantity else {
                p: q for p, q in cart.items.items() if p != product
            }  # fmt: skip
            cart.version += 1
            return self.answer(200, cart.body(), cart.etag)
        if not cart.items:
            return self.answer(400, {"detail": "Your cart is empty."})
        total = cart.body()["total"]
        cart.items, cart.version = {}, cart.version + 1
        return self.answer(201, {"order": cart.version, "total": total}, cart.etag)

    def do_GET(self) -> None:
        self.route("GET")

    def do_PUT(self) -> None:
        self.route("PUT")

    def do_DELETE(self) -> None:
        self.route("DELETE")

    def do_POST(self) -> None:
        self.route("POST")


@contextmanager
def running_etag_shop(conflict_every: int = 7, *, lose_carts: bool = False) -> Iterator[EtagShop]:
    """The stand-in shop on a free loopback port, serving from a thread until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.shop = EtagShop(  # type: ignore[attr-defined]
        url=f"http://127.0.0.1:{server.server_address[1]}",
        conflict_every=conflict_every,
        lose_carts=lose_carts,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.shop  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
