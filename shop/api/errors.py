"""Every API error is ``{"detail": "..."}``: one shape for clients to read."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


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
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"detail": _first_message(exc.detail), "errors": exc.detail}
    elif not isinstance(response.data, dict) or "detail" not in response.data:
        response.data = {"detail": _first_message(response.data)}
    return response
