"""The JSON API views: thin; the work is in ``shop.services`` and ``shop.cart``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate, login, logout
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView
from rest_framework_simplejwt import views as jwt_views

from sessions_lab.modes import Mode, get_mode
from shop import login_throttle, services
from shop.api import idempotent, serializers
from shop.api.conditional import (
    IF_MATCH,
    PRECONDITION_FAILED,
    etag_header,
    if_match_versions,
    with_etag,
)
from shop.api.quick import cart_body, quick_answer, quick_cart, quick_cart_write
from shop.cart import CartStore, CartTooLargeError, UnknownProductError, cart_store_for
from shop.idempotency import InvalidKeyError, KeyReusedError, checkout_once
from shop.inspector import describe_session
from shop.jwt_cookies import issue_tokens
from shop.models import Product


class LoginThrottled(exceptions.Throttled):
    default_detail = "Too many failed logins."


def checked_login(request: Request, username: str, password: str) -> Any:
    """The user for these credentials, throttled per account across every instance."""
    refusal = login_throttle.login_refusal(request._request, username)
    if refusal is not None:
        raise LoginThrottled(wait=refusal.retry_after, detail=refusal.message)
    user = authenticate(request._request, username=username, password=password)
    if user is None:
        login_throttle.record_login_failure(request._request, username)
        raise exceptions.AuthenticationFailed(login_throttle.GENERIC_LOGIN_ERROR)
    login_throttle.clear_login_failures(username)
    return user


def credentials(request: Request) -> tuple[str, str]:
    """Username and password from the body; anything malformed gets the one generic message."""
    body = serializers.CredentialsSerializer(data=request.data)
    if not body.is_valid():
        raise exceptions.ValidationError(login_throttle.GENERIC_LOGIN_ERROR)
    return body.validated_data["username"], body.validated_data["password"]


def _current_mode() -> Mode:
    return get_mode(settings.SESSION_MODE)


def _is_jwt_mode() -> bool:
    return _current_mode().is_jwt


def error_answer(description: str) -> OpenApiResponse:
    """An error answer in the schema: always ``{"detail": "..."}``."""
    return OpenApiResponse(serializers.ErrorSerializer, description=description)


MALFORMED = "A malformed body: not JSON, or a field missing, of the wrong type or out of bounds."
THROTTLED = "Too many failed logins for this account or from this client."

# Ids are BigAutoField values: positive, at most 2**63 - 1. Any other integer
# is an unknown product (404); anything else misses the route, also a JSON 404.
PRODUCT_ID = OpenApiParameter(
    "product_id",
    {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
    OpenApiParameter.PATH,
    description="A product's id, as /api/products/ lists it.",
)


class JSONOnly(DefaultContentNegotiation):
    """The shop's API speaks JSON only: answer in it without parsing ``Accept``.

    DRF's default negotiation parses the header (and ``?format=``) on every
    request to choose among renderers; with one renderer there is nothing to choose.
    """

    def select_renderer(
        self, request: Request, renderers: list[Any], format_suffix: str | None = None
    ) -> tuple[Any, str]:
        return renderers[0], renderers[0].media_type


class ShopAPI:
    """What every shop API view shares: JSON only, and the current mode's authentication.

    The authentication is read per request, not at import: DRF copies
    ``DEFAULT_AUTHENTICATION_CLASSES`` onto each view class when it is
    defined; reading it here instead lets the contract tests switch mode.
    """

    content_negotiation_class = JSONOnly

    def get_authenticators(self) -> list[BaseAuthentication]:
        return [cls() for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES]


class ServedInSomeModes:
    """A view only some modes serve: 404 in the others, before authentication.

    ``served_in`` is also what leaves the view out of those modes' OpenAPI schema.
    """

    @classmethod
    def served_in(cls, mode: Mode) -> bool:
        raise NotImplementedError

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if not self.served_in(_current_mode()):
            raise exceptions.NotFound()
        super().initial(request, *args, **kwargs)  # type: ignore[misc]


class SessionModesOnly(ServedInSomeModes):
    """Not in ``jwt`` mode: there is no session to log into."""

    @classmethod
    def served_in(cls, mode: Mode) -> bool:
        return not mode.is_jwt


class JWTModeOnly(ServedInSomeModes):
    """Only in ``jwt`` mode: the session modes hand out no tokens."""

    @classmethod
    def served_in(cls, mode: Mode) -> bool:
        return mode.is_jwt


class CartAccess(BasePermission):
    """Anonymous carts in the session modes; in ``jwt`` mode the cart belongs to a user."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return not _is_jwt_mode() or bool(request.user and request.user.is_authenticated)


def _store(request: Request) -> CartStore:
    store = cart_store_for(request)
    if store is None:
        raise exceptions.NotAuthenticated()
    return store


@extend_schema(responses={200: serializers.WhoAmISerializer})
class WhoAmIView(ShopAPI, APIView):
    """Who this request is, which instance answered, and where the session lives; sets the CSRF cookie."""

    def get(self, request: Request) -> Response:
        get_token(request._request)
        user = request.user
        return Response(
            {
                "instance": settings.INSTANCE_NAME,
                "mode": settings.SESSION_MODE,
                "authenticated": bool(user.is_authenticated),
                "username": user.get_username() if user.is_authenticated else "",
                "session": describe_session(
                    request._request, bearer=request.auth if _is_jwt_mode() else None
                ),
            }
        )


@extend_schema(
    parameters=[OpenApiParameter("category", str, description="Only this category's products")]
)
class ProductListView(ShopAPI, generics.ListAPIView):
    """The catalog as a plain list (not paginated)."""

    serializer_class = serializers.ProductSerializer
    pagination_class = None

    def get_authenticators(self) -> list[BaseAuthentication]:
        # The same for everyone, so it never loads the session: the catalog
        # keeps answering while the session store is down.
        return []

    def get_queryset(self):
        products = Product.objects.all()
        category = self.request.query_params.get("category")
        return products.filter(category=category) if category else products


class CartView(ShopAPI, APIView):
    """The cart of this session (or, in ``jwt`` mode, of this user), its version in the ETag."""

    permission_classes = [CartAccess]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # The cart read is the shop's busiest request, and DRF's request
        # machinery costs more than the read itself: a read that ``quick_cart``
        # can answer is answered here. Everything else (no login in jwt mode, a
        # bad token, the pages' JWT cookies) goes through DRF, errors and all.
        if request.method == "GET":
            cart = quick_cart(request)
            if cart is not None:
                return quick_answer(self, cart)
        return super().dispatch(request, *args, **kwargs)

    @extend_schema(parameters=[etag_header(200)], responses={200: serializers.CartSerializer})
    def get(self, request: Request) -> Response:
        cart = _store(request).load()
        return with_etag(Response(cart_body(cart)), cart.version)


class CartItemView(ShopAPI, APIView):
    """Set one product's quantity (0 removes it): idempotent, so a retry cannot add twice.

    With If-Match, only while the cart is at the version the client read: a
    late copy of the request, after the client changed the cart again, is 412.
    """

    # A write that finds the cart moved raises StaleCartError: shop.api.errors answers the 412.
    permission_classes = [CartAccess]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # The busiest write: a plain one is answered without DRF (shop.api.quick).
        if request.method == "PUT":
            cart = quick_cart_write(request, kwargs["product_id"])
            if cart is not None:
                return quick_answer(self, cart)
        return super().dispatch(request, *args, **kwargs)

    def _check_product(self, product_id: int) -> None:
        if not services.product_exists(product_id):
            raise exceptions.NotFound(f"Unknown product {product_id}.")

    @extend_schema(
        parameters=[PRODUCT_ID, IF_MATCH, etag_header(200, 412)],
        request=serializers.QuantitySerializer,
        responses={
            200: serializers.CartSerializer,
            400: error_answer(
                f"{MALFORMED} Or a cart past the 4 KB of a signed-cookie session (then: fewer lines)."
            ),
            404: error_answer("No product with this id."),
            **PRECONDITION_FAILED,
        },
    )
    def put(self, request: Request, product_id: int) -> Response:
        self._check_product(product_id)
        body = serializers.QuantitySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            cart = services.cart_set_item(
                _store(request),
                product_id,
                body.validated_data["quantity"],
                versions=if_match_versions(request),
            )
        except CartTooLargeError as error:
            raise exceptions.ValidationError(str(error)) from None
        except UnknownProductError as error:  # deleted since this process read its prices
            raise exceptions.NotFound(str(error)) from None
        return with_etag(Response(cart_body(cart)), cart.version)

    @extend_schema(
        parameters=[PRODUCT_ID, IF_MATCH, etag_header(200, 412)],
        request=None,
        # 200 with the cart, not 204: the client sees the new total at once.
        responses={
            200: serializers.CartSerializer,
            404: error_answer("No product with this id."),
            **PRECONDITION_FAILED,
        },
    )
    def delete(self, request: Request, product_id: int) -> Response:
        self._check_product(product_id)
        versions = if_match_versions(request)
        cart = services.cart_remove_item(_store(request), product_id, versions=versions)
        return with_etag(Response(cart_body(cart)), cart.version)


class CheckoutView(ShopAPI, APIView):
    """Place an order from the cart and empty it; needs a login in every mode.

    With If-Match, only while the cart is at the version the client read;
    with an Idempotency-Key, once (``shop.api.idempotent``).
    """

    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[IF_MATCH, idempotent.IDEMPOTENCY_KEY, etag_header(201, 412)],
        request=None,
        responses={
            201: serializers.OrderCreatedSerializer,
            400: error_answer("The cart is empty, or the Idempotency-Key is malformed."),
            **PRECONDITION_FAILED,
            **idempotent.KEY_REUSED,
        },
    )
    def post(self, request: Request) -> Response:
        try:
            placed = checkout_once(
                request.user,
                _store(request),
                idempotent.key_of(request),
                idempotent.request_fingerprint(request),
                versions=if_match_versions(request),
            )
        except (services.EmptyCartError, InvalidKeyError) as error:
            raise exceptions.ValidationError(str(error)) from None
        except KeyReusedError as error:
            raise idempotent.KeyReused(str(error)) from None
        body = {"order": placed.order.pk, "total": f"{placed.order.total:.2f}"}
        # The ETag of the cart the order leaves: empty, one version on.
        response = with_etag(Response(body, status=status.HTTP_201_CREATED), placed.cart.version)
        if placed.replayed:
            response["Idempotent-Replayed"] = "true"
        return response


# What a login answers when it fails, with a session or for tokens alike.
LOGIN_ERRORS = {
    400: error_answer(MALFORMED),
    401: error_answer("Wrong username or password."),
    429: error_answer(THROTTLED),
}


class SessionLoginView(ShopAPI, SessionModesOnly, APIView):
    """Log in with a session; the session id is rotated, the anonymous cart kept."""

    @extend_schema(
        request=serializers.CredentialsSerializer,
        responses={200: serializers.LoggedInSerializer, **LOGIN_ERRORS},
    )
    def post(self, request: Request) -> Response:
        user = checked_login(request, *credentials(request))
        login(request._request, user)
        return Response({"detail": "Logged in.", "username": user.get_username()})


class SessionLogoutView(ShopAPI, SessionModesOnly, APIView):
    """End the session: server-side modes forget it; a copied signed cookie stays valid."""

    @extend_schema(request=None, responses={200: serializers.DetailSerializer})
    def post(self, request: Request) -> Response:
        logout(request._request)
        return Response({"detail": "Logged out."})


class TokenObtainView(JWTModeOnly, APIView):
    """Trade a username and password for an access and a refresh token."""

    authentication_classes = ()
    www_authenticate_realm = "api"

    def get_authenticate_header(self, request: Request) -> str:
        return f'Bearer realm="{self.www_authenticate_realm}"'

    @extend_schema(
        request=serializers.CredentialsSerializer,
        responses={200: serializers.TokenPairSerializer, **LOGIN_ERRORS},
    )
    def post(self, request: Request) -> Response:
        access, refresh = issue_tokens(checked_login(request, *credentials(request)))
        return Response({"access": access, "refresh": refresh})


INVALID_REFRESH = "Not a refresh token, or an expired or blacklisted one, or its user is inactive."


@extend_schema(
    request=serializers.RefreshSerializer,
    responses={
        200: serializers.TokenPairSerializer,
        400: error_answer(MALFORMED),
        401: error_answer(INVALID_REFRESH),
    },
)
class TokenRefreshView(JWTModeOnly, jwt_views.TokenRefreshView):
    """Trade a refresh token for a new pair; the old refresh token is blacklisted."""

    serializer_class = serializers.TokenRefreshBody


class TokenLogoutView(JWTModeOnly, jwt_views.TokenBlacklistView):
    """Blacklist a refresh token. The access token stays valid until it expires."""

    serializer_class = serializers.TokenBlacklistBody

    @extend_schema(
        request=serializers.RefreshSerializer,
        responses={
            200: serializers.DetailSerializer,
            400: error_answer(MALFORMED),
            401: error_answer(INVALID_REFRESH),
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        super().post(request, *args, **kwargs)
        return Response({"detail": "Logged out. The access token stays valid until it expires."})
