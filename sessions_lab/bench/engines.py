"""Micro-benchmark of the session engines alone, without HTTP: µs per load+modify+save.

For each session mode: load a session holding a logged-in user and a
5-item cart through Django's ``SessionStore``, change one line, save it —
what a cart write costs in that mode. For ``jwt``: create a token pair and
verify the access token — what a login and a token's check cost. Each
figure is the engine's full work: the shop remembers a cookie or token that
passed its check (``shop/verified.py``), which the benchmark forgets each time. One mode per
process (``python -m sessions_lab.bench.engines MODE``), because the mode
is fixed when Django starts, exactly as in an instance.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from sessions_lab.modes import get_mode

CART = {"lines": {"1": 2, "4": 1, "7": 3, "12": 1, "19": 2}}


def time_per_op(operation: Callable[[], None], seconds: float) -> dict[str, float]:
    """Median and p95 µs per operation over repeated batches, after a warm-up."""
    for _ in range(20):
        operation()
    batches: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(batches) < 5:
        start = time.perf_counter()
        for _ in range(20):
            operation()
        batches.append((time.perf_counter() - start) / 20 * 1e6)
    batches.sort()
    return {
        "median_us": round(statistics.median(batches), 1),
        "p95_us": round(batches[int(0.95 * (len(batches) - 1))], 1),
        "batches": len(batches),
    }


def measure(mode_name: str, seconds: float) -> dict[str, Any]:
    import django
    from django.conf import settings

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from importlib import import_module

    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(username="bench")
    # No server session to load and save: what a token mode pays is its token.
    if get_mode(settings.SESSION_MODE).is_jwt:
        from rest_framework_simplejwt.authentication import JWTAuthentication
        from rest_framework_simplejwt.tokens import RefreshToken

        authentication = JWTAuthentication()
        access = str(RefreshToken.for_user(user).access_token)

        def verify() -> None:
            authentication.get_user(authentication.get_validated_token(access))

        def create() -> None:
            str(RefreshToken.for_user(user).access_token)

        return {
            "mode": mode_name,
            "operation": "verify access token (the shop: once per token and process) + load user",
            **time_per_op(verify, seconds),
            "create_pair_us": time_per_op(create, seconds / 2)["median_us"],
        }

    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    session = store_class()
    session.update({"_auth_user_id": str(user.pk), "cart": CART})
    session.save()
    key = session.session_key
    counter = iter(range(10**9))
    remembered = getattr(import_module(settings.SESSION_ENGINE), "VERIFIED_COOKIES", None)

    def operation() -> None:
        nonlocal key
        if remembered is not None:
            remembered.clear()  # the engine's full work: check the signature
        loaded = store_class(key)
        cart = dict(loaded["cart"]["lines"])
        cart["1"] = next(counter) % 9 + 1
        loaded["cart"] = {"lines": cart}
        loaded.save()
        key = loaded.session_key  # a signed cookie's key is its content: it changes

    return {
        "mode": mode_name,
        "operation": "load + modify + save",
        **time_per_op(operation, seconds),
    }


def main() -> None:
    mode_name = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    os.environ["SESSION_MODE"] = mode_name
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sessions_lab.settings")
    print(json.dumps(measure(mode_name, seconds)))


if __name__ == "__main__":
    main()
