"""Every answer under ``/api/`` is JSON, errors ``{"detail": "..."}``: one shape for clients to read.

DRF gives its own views that shape (``exception_handler``), and answers a
conditional cart write that found the cart changed (``StaleCartError``) with
its 412 and the cart's ETag (``shop.api.conditional``). What never reaches
a DRF view is Django's, and would be an HTML page: a path no route matches
(``not_found``, the last route under ``/api/``), and the answers of Django's
error handlers (``json_under_api`` wraps them: 400, 403, 500). The pages keep
Django's HTML answers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.contrib.sessions.exceptions import SessionInterrupted
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from shop.api.conditional import stale_cart_answer
from shop.cart import StaleCartError

API_PREFIX = "/api/"
NOT_FOUND_ROUTE = "api-not-found"
# The same words DRF uses for the same statuses, so a client sees one vocabulary.
DETAILS = {
    400: "Bad request.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    500: "A server error occurred.",
}


def _first_message(detail: Any, path: str = "") -> str:
    if isinstance(detail, dict):
        for field, value in detail.items():
            prefix = "" if field == "non_field_errors" else f"{path}{field}: "
            return _first_message(value, prefix)
        return path
    if isinstance(detail, list):
        return _first_message(detail[0], path) if detail else path
    return f"{path}{detail}"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, StaleCartError):
        return stale_cart_answer(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"detail": _first_message(exc.detail), "errors": exc.detail}
    elif not isinstance(response.data, dict) or "detail" not in response.data:
        response.data = {"detail": _first_message(response.data)}
    return response


def is_api(request: HttpRequest) -> bool:
    return request.path_info == API_PREFIX.rstrip("/") or request.path_info.startswith(API_PREFIX)


def _with_slash_is_a_route(request: HttpRequest) -> bool:
    try:
        return resolve(f"{request.path_info}/").url_name != NOT_FOUND_ROUTE
    except Resolver404:
        return False


@csrf_exempt  # nothing happens here: a forged request learns only that the path is unknown
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any method on any ``/api/`` path no route matches, a malformed id included.

    A path missing its final slash is not redirected (Django's ``APPEND_SLASH``
    would, as an HTML 301 that drops a POST's body): the answer names the path.
    """
    detail = DETAILS[404]
    if not request.path_info.endswith("/") and _with_slash_is_a_route(request):
        detail = f"Not found. The API's paths end with a slash: {request.path}/"
    return JsonResponse({"detail": detail}, status=HTTPStatus.NOT_FOUND)


def json_under_api(page: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Django's error handler ``page``, answering JSON instead under ``/api/``.

    An answer ``page`` already gives in JSON (a 503 for an unreachable session
    store) is kept as it is, headers and all.
    """

    @functools.wraps(page)
    def handler(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = page(request, *args, **kwargs)
        if not is_api(request) or response.get("Content-Type", "").startswith("application/json"):
            return response
        status = response.status_code
        detail = DETAILS.get(status) or f"{HTTPStatus(status).phrase}."
        if isinstance(kwargs.get("exception"), SessionInterrupted):
            # Worth saying: the session was ended (a logout elsewhere) while
            # this request ran, and what it changed was not kept.
            detail = str(kwargs["exception"])
        return JsonResponse({"detail": detail}, status=status)

    return handler
