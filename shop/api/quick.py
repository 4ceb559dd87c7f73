"""The cart read and write answered without DRF's machinery, when the request is the plain kind.

The cart read is the shop's busiest request, and the cart write what a
shopper does most when it matters. DRF's request machinery (the request
wrapper, content negotiation, parser, serializer, authentication classes and
renderer) costs more than either: about 150 µs a write on the lab's machine,
more than any session store. ``CartView`` and ``CartItemView`` ask here
first; what is answered here is only what DRF would answer with a 200, and
everything else goes to DRF, so every refusal keeps its exact status and body.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.authentication import CSRFCheck
from rest_framework.exceptions import APIException
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from sessions_lab.modes import get_mode
from shop import services
from shop.api.authentication import BearerAuthentication
from shop.api.conditional import with_etag
from shop.cart import (
    MAX_QUANTITY,
    Cart,
    CartStore,
    CartTooLargeError,
    UnknownProductError,
    UserCartStore,
    active_user_cart,
    cart_store_for,
    session_cart,
)

BEARER = BearerAuthentication()


def cart_body(cart: Cart) -> dict[str, Any]:
    return {
        "items": [{"product": pid, "quantity": quantity} for pid, quantity in cart],
        "total": f"{services.cart_total(cart):.2f}",
    }


def quick_answer(view: APIView, cart: Cart) -> HttpResponse:
    """The 200 DRF would give with this cart, rendered without it."""
    return with_etag(
        JsonResponse(
            cart_body(cart),
            headers=view.default_response_headers,
            json_dumps_params={"separators": (",", ":")},  # as DRF renders it
        ),
        cart.version,
    )


def quick_cart(request: HttpRequest) -> Cart | None:
    """The cart, if this request's login (or session) can be read cheaply; None: ask DRF.

    In the session modes the cart belongs to the session, logged in or not (with
    ``CART_STORE=rows``, to the user it names), so no user row is loaded, and a
    read does not check the login: after a password change, the session reads
    its cart until a request acting as the user (a write, checkout, whoami)
    finds the session stale and flushes it, as Django does. In ``jwt`` mode a
    valid bearer token names the user; one query checks they may log in and reads the cart.
    """
    if not get_mode(settings.SESSION_MODE).is_jwt:
        return session_cart(request.session)
    try:
        user_id = BEARER.user_id(request)
    except (APIException, InvalidToken):
        return None
    return active_user_cart(user_id) if user_id is not None else None


def quick_cart_write(request: HttpRequest, product_id: int) -> Cart | None:
    """The cart after this PUT set ``product_id``'s quantity; None if DRF must answer it instead.

    Answered here only when nothing can go wrong that DRF would word: no
    If-Match; a JSON body that is exactly ``{"quantity": n}``, ``n`` a JSON
    integer within bounds; a product in the price list; and, in the session
    modes, a CSRF token that passes DRF's own check (``CSRFCheck``), or in
    ``jwt`` mode, a valid bearer token of an active user. As through DRF, a
    session's user is loaded (a session left from before a password change is
    flushed by Django then) and the store is ``cart_store_for``'s. Nothing is
    changed before the answer is known to be this one; a cart that would not
    fit its cookie is left unchanged, and DRF says why.
    """
    if "If-Match" in request.headers or request.content_type != "application/json":
        return None
    quantity = _quantity(request)
    if quantity is None or product_id not in services.PRICES.get():
        return None
    jwt = get_mode(settings.SESSION_MODE).is_jwt
    store = _bearer_store(request) if jwt else _session_store(request)
    if store is None:
        return None
    try:
        return services.cart_set_item(store, product_id, quantity)
    except (CartTooLargeError, UnknownProductError):  # nothing changed: DRF says why
        return None


def _quantity(request: HttpRequest) -> int | None:
    try:
        # Decoded as DRF's JSON parser decodes it: the charset given, or Django's.
        data = json.loads(request.body.decode(request.encoding or settings.DEFAULT_CHARSET))
    except (ValueError, LookupError, RequestDataTooBig):
        return None
    if not isinstance(data, dict) or data.keys() != {"quantity"}:
        return None
    quantity = data["quantity"]
    # type(), not isinstance(): True is an int, and DRF's serializer refuses it.
    if type(quantity) is not int or not 0 <= quantity <= MAX_QUANTITY:
        return None
    return quantity


def _session_store(request: HttpRequest) -> CartStore | None:
    check = CSRFCheck(lambda _request: None)  # type: ignore[arg-type, return-value]
    check.process_request(request)
    if check.process_view(request, None, (), {}) is not None:  # a reason: refused
        return None
    request.user.is_active  # noqa: B018 -- loads the user, as DRF's SessionAuthentication does
    return cart_store_for(request)


def _bearer_store(request: HttpRequest) -> CartStore | None:
    try:
        found: tuple[Any, Any] | None = BEARER.authenticate(request)  # type: ignore[arg-type]
    except (APIException, InvalidToken, TokenError):
        return None
    return UserCartStore(found[0]) if found is not None else None
