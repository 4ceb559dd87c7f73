"""Headers on every answer: which instance and mode answered, and who may keep a copy.

``X-Served-By`` and ``X-Session-Mode`` let a client (and the workshop) see
where a request went; ``X-Session-Node``, where the store is memcached nodes,
which node holds the session (``shop/session_node.py``). The cache headers keep personal answers out of shared
caches and off a shared computer's disk: nearly every answer of the shop
depends on who asks (a cart, a name, the session inspector at the foot of
every page), and identity arrives in a cookie (a session id, a signed
session, the pages' JWT cookies) or in ``Authorization`` (the API's bearer
token), so a cache that keeps an answer must key it on both.

It also logs a *late write*: a write this instance answers after nginx has
given up waiting for it (``X-Request-Start``, set by nginx, is older than
nginx's read timeout). Such a request comes from an instance that hung and
resumed; nginx has meanwhile re-sent it to another instance (a PUT or a
DELETE) or answered the client 504 (a POST), so applying it now applies a
client's write a second time, over whatever the client did since. The
experiment report reads these lines (``late write {json}``).
"""

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control, patch_vary_headers

from shop.session_node import node_of

# Answers that are the same for everyone; everything else is personal.
# (Static files never reach this middleware: WhiteNoise answers them first.)
PUBLIC_PATHS = ("/healthz", "/api/products/", "/api/schema/", "/api/docs/")
PERSONAL_CACHE_CONTROL = "private, no-store"
IDENTITY_CARRIERS = ("Cookie", "Authorization")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
LATE_WRITE = "late write"
late_writes = logging.getLogger("shop.late_writes")


def is_personal(path: str) -> bool:
    """Whether the answer to ``path`` may depend on who is asking."""
    return not path.startswith(PUBLIC_PATHS)


class InstanceHeadersMiddleware:
    """Adds ``X-Served-By``, ``X-Session-Mode``, ``X-Session-Node`` (memcached nodes only) and,
    on personal answers, ``Cache-Control: private, no-store`` and ``Vary: Cookie,
    Authorization`` — without loading the session."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response["X-Served-By"] = settings.INSTANCE_NAME
        response["X-Session-Mode"] = settings.SESSION_MODE
        session = getattr(request, "session", None)
        node = node_of(session) if session is not None else None
        if node is not None:
            response["X-Session-Node"] = str(node)
        if is_personal(request.path):
            # Set outright when the view said nothing (the hot path: the cart
            # read); merged with what it said otherwise (never_cache's max-age=0).
            if response.has_header("Cache-Control"):
                patch_cache_control(response, private=True, no_store=True)
            else:
                response["Cache-Control"] = PERSONAL_CACHE_CONTROL
            patch_vary_headers(response, IDENTITY_CARRIERS)
        if request.method not in SAFE_METHODS:
            _log_if_late(request, response)
        return response


def request_start(header: str) -> float | None:
    """The Unix time in nginx's ``X-Request-Start: t=1732912345.678``, or None."""
    try:
        return float(header.removeprefix("t="))
    except ValueError:
        return None


def _log_if_late(request: HttpRequest, response: HttpResponse) -> None:
    started = request_start(request.META.get("HTTP_X_REQUEST_START", ""))
    now = time.time()
    # nginx gives a login longer (LOGIN_WAIT_S) before it gives up on it.
    waits = (
        settings.LOGIN_WAIT_S
        if request.path in settings.LOGIN_PATHS
        else settings.LATE_WRITE_AFTER_S
    )
    if started is None or now - started <= waits:
        return
    record: dict[str, Any] = {
        "request_id": request.META.get("HTTP_X_REQUEST_ID", ""),
        "method": request.method,
        "path": request.path,
        "user": _username(request),
        "status": response.status_code,
        "instance": settings.INSTANCE_NAME,
        "sent_at": started,
        "at": round(now, 3),
    }
    late_writes.warning("%s %s", LATE_WRITE, json.dumps(record))


def _username(request: HttpRequest) -> str:
    """Who wrote, if the request got as far as knowing: the report names whose cart it was."""
    try:
        user = request.user
    except Exception:  # the session store failed: the answer says so, the log need not
        return ""
    return user.get_username() if user.is_authenticated else ""
