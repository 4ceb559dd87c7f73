"""``POST /api/checkout/`` with an ``Idempotency-Key``: the API's side of ``shop.idempotency``.

The key binds to the request: its body and its ``If-Match`` (send one to
bind the key to the cart version it buys). A repeat answers the first
order's 201 with ``Idempotent-Replayed: true``; a key reused for another
request is 422; a malformed key 400.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import exceptions, status
from rest_framework.request import Request

from shop import idempotency
from shop.api import serializers
from shop.idempotency import KEY_PATTERN

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    pattern=KEY_PATTERN,
    description=(
        "Makes a repeat of this checkout safe: the same key and request answer with the order "
        "the first placed (Idempotent-Replayed: true), never a second one. Unique per checkout; "
        "kept 24 hours. With If-Match, the key is bound to that cart version."
    ),
)
KEY_REUSED = {
    422: OpenApiResponse(
        serializers.ErrorSerializer,
        description="The Idempotency-Key was first used for another checkout request.",
    )
}


class KeyReused(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_key_reused"


def key_of(request: Request) -> str | None:
    return request.headers.get("Idempotency-Key")


def request_fingerprint(request: Request) -> str:
    """The body and If-Match: what a repeat of the same checkout sends again."""
    return idempotency.fingerprint(request._request.body, request.headers.get("If-Match", ""))
