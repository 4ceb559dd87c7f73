"""A test client of the JSON API that shops the same way in every mode.

Session modes log in with ``/api/session/login/`` and send the CSRF token
on writes; ``jwt`` gets a token pair and sends ``Authorization: Bearer``.
Tests call the same methods either way, so one suite covers all six modes.
"""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

from sessions_lab.modes import get_mode

PASSWORD = "correct horse battery staple"


class Shopper:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.jwt = get_mode(mode).is_jwt
        self.client = Client(enforce_csrf_checks=True)
        self.access = ""
        self.refresh = ""
        self.client.get("/api/whoami/")  # like every client: fetch the CSRF cookie first

    # --- plumbing
    @property
    def csrf(self) -> str:
        cookie = self.client.cookies.get("csrftoken")
        return cookie.value if cookie else ""

    def headers(self) -> dict[str, str]:
        if self.access:
            return {"Authorization": f"Bearer {self.access}"}
        return {"X-CSRFToken": self.csrf}

    def call(self, method: str, path: str, body: Any = None, **extra: Any):
        data = json.dumps(body) if body is not None else None
        headers = {**self.headers(), **extra.pop("headers", {})}
        return getattr(self.client, method)(
            path, data=data, content_type="application/json", headers=headers, **extra
        )

    # --- the shop
    def whoami(self) -> dict[str, Any]:
        response = self.call("get", "/api/whoami/")
        assert response.status_code == 200, response.content
        return response.json()

    def products(self) -> list[dict[str, Any]]:
        return self.call("get", "/api/products/").json()

    def cart(self) -> dict[str, Any]:
        response = self.call("get", "/api/cart/")
        assert response.status_code == 200, response.content
        return response.json()

    def cart_lines(self) -> dict[int, int]:
        return {item["product"]: item["quantity"] for item in self.cart()["items"]}

    def set_quantity(self, product: int, quantity: Any):
        return self.call("put", f"/api/cart/items/{product}/", {"quantity": quantity})

    def remove(self, product: int):
        return self.call("delete", f"/api/cart/items/{product}/")

    def checkout(self):
        return self.call("post", "/api/checkout/")

    def login(self, username: str = "alice", password: str = PASSWORD):
        if self.jwt:
            response = self.call(
                "post", "/api/token/", {"username": username, "password": password}
            )
            if response.status_code == 200:
                self.access, self.refresh = response.json()["access"], response.json()["refresh"]
            return response
        return self.call(
            "post", "/api/session/login/", {"username": username, "password": password}
        )

    def logout(self):
        if self.jwt:
            response = self.call("post", "/api/token/logout/", {"refresh": self.refresh})
            self.access = ""
            return response
        return self.call("post", "/api/session/logout/")

    def session_cookie(self) -> str:
        cookie = self.client.cookies.get("sessionid")
        return cookie.value if cookie else ""
