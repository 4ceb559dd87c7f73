"""Puts the session inspector into every page's context, computed only if rendered."""

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from shop.inspector import inspector


def session_inspector(request: HttpRequest) -> dict[str, Any]:
    return {"inspector": SimpleLazyObject(lambda: inspector(request))}
