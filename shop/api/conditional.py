"""Conditional cart writes: the cart's version as an ETag, and If-Match on the writes that change it.

An instance that hangs (SIGSTOP) holds the requests queued on it; nginx
times them out and sends a PUT or a DELETE again to another instance. When
the hung one resumes it applies its old copy, over whatever the client did
since. A client that sends the ETag it last read as ``If-Match`` is safe:
the late copy names a version the cart has left, and is answered 412 with
nothing changed. Without If-Match a write is unconditional, as before.

The ETag is strong, ``"cart-<version>"`` (``shop.cart``: the version goes up
with every change of the lines), on every answer that shows the cart or
leaves it changed, and on the 412, so a client can read again and retry.
"""

from __future__ import annotations

import re
from typing import TypeVar

from django.http import HttpRequest, HttpResponseBase
from django.utils.http import parse_etags
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import status
from rest_framework.response import Response

from shop.api import serializers
from shop.cart import StaleCartError
from shop.services import Versions

# A version is a PositiveBigIntegerField: at most 19 digits, never a leading 0.
# A tag that cannot name a version simply matches none (and int() of a huge
# string of digits would raise).
CART_ETAG = re.compile(r'"cart-(0|[1-9][0-9]{0,18})"')
ETAG_SCHEMA = {"type": "string", "pattern": r'^"cart-(0|[1-9][0-9]*)"$'}

Answer = TypeVar("Answer", bound=HttpResponseBase)


def etag(version: int) -> str:
    """The cart's strong ETag, quotes included."""
    return f'"cart-{version}"'


def if_match_versions(request: HttpRequest) -> Versions:
    """The cart versions this request's If-Match lets a write apply to; None: any (no header, or ``*``).

    Strong comparison: a weak tag (``W/"cart-1"``) matches nothing. A header
    with no tag that can be parsed allows no version: the write is a 412.
    """
    header = request.headers.get("If-Match")
    if header is None:
        return None
    tags = parse_etags(header)
    if tags == ["*"]:
        return None
    return frozenset(int(match[1]) for tag in tags if (match := CART_ETAG.fullmatch(tag)))


def with_etag(response: Answer, version: int) -> Answer:
    """``response``, with the ETag of the cart at ``version``."""
    response["ETag"] = etag(version)
    return response


def stale_cart_answer(error: StaleCartError) -> Response:
    """The 412: what the cart's version is now, and what to do about it."""
    tag = etag(error.version)
    return Response(
        {
            "detail": f"The cart changed since you read it (it is now {tag}): read it again, then retry."
        },
        status=status.HTTP_412_PRECONDITION_FAILED,
        headers={"ETag": tag},
    )


# ------------------------------------------------------------ the OpenAPI schema

IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description='Write only if the cart is still at this version: the ETag ("cart-N") an '
    "earlier answer gave, a comma-separated list of them, or * for any. A cart at another "
    "version answers 412 and is not changed. Without it the write is unconditional.",
)


def etag_header(*statuses: int) -> OpenApiParameter:
    """The ETag response header, on the answers ``statuses``."""
    return OpenApiParameter(
        "ETag",
        ETAG_SCHEMA,
        OpenApiParameter.HEADER,
        required=True,
        response=list(statuses),
        description='The cart\'s version as a strong ETag, "cart-N": N goes up by one with '
        "each change of its lines. Send it back as If-Match to write only over this version.",
    )


PRECONDITION_FAILED = {
    412: OpenApiResponse(
        serializers.ErrorSerializer,
        description="If-Match names no version the cart is at (it changed since it was read, "
        "or the header is malformed): nothing was changed. The ETag header gives the cart's "
        "version now: read the cart again, then retry.",
    )
}
