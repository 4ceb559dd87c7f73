"""µs per request through Django's WSGI handler in one process: where a page's time goes.

No nginx, no gunicorn, no other instance: one logged-in user with a 5-item
cart, and ``/healthz``, a cart read and a cart write called straight on the
WSGI application in a loop. With ``--profile PAGE`` it prints cProfile's
heaviest functions for that page instead. This is the tool behind the tuning
log of ``docs/performance.md`` (find with the profile, confirm with the loop).

    SESSION_MODE=cookie python -m sessions_lab.bench.inprocess
    SESSION_MODE=jwt python -m sessions_lab.bench.inprocess --profile cart_write

It uses the environment as an instance does (``DATABASE_URL``, ``REDIS_URL``,
…); without ``DATABASE_URL`` a throwaway SQLite file. One mode per process,
because Django fixes the mode when it starts.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import secrets
import tempfile
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any

from sessions_lab.bench.engines import time_per_op
from sessions_lab.modes import get_mode

CART_LINES = {1: 2, 4: 1, 7: 3, 12: 1, 19: 2}
WRITE_PRODUCT = 7
PAGES = ("healthz", "cart_read", "cart_write")


class Caller:
    """One client of the WSGI application: its cookies and token, kept between calls."""

    def __init__(self, application: Callable[..., Any]) -> None:
        self.application = application
        self.cookies: dict[str, str] = {}
        self.access = ""

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else b""
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8080",
            "REMOTE_ADDR": "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1:8080",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(data),
            "wsgi.errors": io.StringIO(),
            "CONTENT_LENGTH": str(len(data)),
            "CONTENT_TYPE": "application/json",
        }
        if self.cookies:
            environ["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if "csrftoken" in self.cookies:
            environ["HTTP_X_CSRFTOKEN"] = self.cookies["csrftoken"]
        if self.access:
            environ["HTTP_AUTHORIZATION"] = f"Bearer {self.access}"
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
            answer["status"] = int(status.split()[0])
            for name, value in headers:
                if name.lower() == "set-cookie":
                    for morsel in SimpleCookie(value).values():
                        if morsel["max-age"] == "0":
                            self.cookies.pop(morsel.key, None)
                        else:
                            self.cookies[morsel.key] = morsel.value

        chunks = self.application(environ, start_response)
        content = b"".join(chunks)
        getattr(chunks, "close", lambda: None)()
        return answer["status"], content


def prepare(jwt: bool) -> tuple[Caller, dict[str, Callable[[], int]]]:
    """Django set up, a user logged in with a 5-item cart, and a call per page."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    call_command("migrate", verbosity=0)
    password = secrets.token_urlsafe(16)
    user, _ = get_user_model().objects.get_or_create(username="bench")
    user.set_password(password)
    user.save()
    caller = Caller(get_wsgi_application())
    caller.call("GET", "/api/whoami/")
    credentials = {"username": "bench", "password": password}
    if jwt:
        status, body = caller.call("POST", "/api/token/", credentials)
        caller.access = json.loads(body)["access"]
    else:
        status, _ = caller.call("POST", "/api/session/login/", credentials)
    if status != 200:
        raise SystemExit(f"login failed: {status}")
    for product, quantity in CART_LINES.items():
        caller.call("PUT", f"/api/cart/items/{product}/", {"quantity": quantity})
    quantities = iter(range(10**9))

    def write() -> int:
        # A different quantity each time: every write changes the cart, and is saved.
        quantity = next(quantities) % 9 + 1
        return caller.call("PUT", f"/api/cart/items/{WRITE_PRODUCT}/", {"quantity": quantity})[0]

    pages = {
        "healthz": lambda: caller.call("GET", "/healthz")[0],
        "cart_read": lambda: caller.call("GET", "/api/cart/")[0],
        "cart_write": write,
    }
    return caller, pages


def time_page(call: Callable[[], int], seconds: float) -> float:
    """Median µs per call over repeated batches (``engines.time_per_op``); a failed call stops the run."""

    def checked() -> None:
        status = call()
        if status >= 400:
            raise SystemExit(f"the page answered {status}")

    return time_per_op(checked, seconds)["median_us"]


def profile_page(call: Callable[[], int], calls: int, top: int) -> str:
    for _ in range(50):
        call()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        call()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sessions_lab.bench.inprocess", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="per page (default 2)")
    parser.add_argument("--profile", choices=PAGES, help="print this page's cProfile instead")
    parser.add_argument("--calls", type=int, default=500, help="calls profiled (default 500)")
    parser.add_argument("--top", type=int, default=40, help="functions shown (default 40)")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sessions_lab.settings")
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("SECRET_KEY", "inprocess-bench-secret-key-0123456789")
    os.environ.setdefault("JWT_SIGNING_KEY", "inprocess-bench-jwt-key-0123456789ab")
    mode = os.environ.setdefault("SESSION_MODE", "sticky")
    with tempfile.TemporaryDirectory() as folder:
        os.environ.setdefault("DATABASE_URL", f"sqlite:///{folder}/bench.sqlite3")
        _, pages = prepare(jwt=get_mode(mode).is_jwt)
        if args.profile:
            print(profile_page(pages[args.profile], args.calls, args.top))
            return
        figures = {name: round(time_page(call, args.seconds), 1) for name, call in pages.items()}
        print(json.dumps({"mode": mode, "us_per_request": figures}))


if __name__ == "__main__":
    main()
