"""The HTML pages a person clicks through; thin, like the API, over ``shop.services``."""

from __future__ import annotations

import sys
import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from sessions_lab.modes import get_mode
from shop import login_throttle, services
from shop.cart import Cart, CartTooLargeError, cart_store_for
from shop.forms import QuantityForm
from shop.idempotency import InvalidKeyError, KeyReusedError, checkout_once
from shop.jwt_cookies import (
    blacklist_refresh,
    delete_token_cookies,
    issue_tokens,
    set_token_cookies,
)
from shop.models import Product
from shop.sessions.errors import UNREACHABLE, SessionChangeRefused

# True whatever Redis's persistence: the shop cannot know whether it will come back with its data.
SESSION_STORE_DOWN = (
    "The session store (Redis) cannot be reached: try again in a moment. Your session is "
    "kept there only, so it is intact if Redis comes back with its data."
)
SESSION_NOT_CHANGED = (
    "The session store (Redis) cannot be reached, so your session was not changed: "
    "try again in a moment."
)
LOGOUT_REFUSED = (
    "Could not log you out: the session store (Redis) cannot be reached, so your session "
    "is unchanged. Try again in a moment."
)
# Every page checkout is the same request: its key alone tells them apart.
PAGE_CHECKOUT = "page checkout"
# The routes that end a session: failing there, the answer must say the logout did not happen.
LOGOUT_ROUTES = frozenset({"logout", "api-session-logout"})


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's 500 page, except that an unreachable session store is a 503 that says so.

    In ``redis`` mode Redis holds the only copy of every session, and a request
    fails rather than treat its visitor as a stranger (``shop.sessions.cache``);
    in ``cached_db`` mode a change to a session that cannot first be cleared
    from Redis is refused (``shop.sessions.cached_db``). Either failure is the
    store's, not the shop's: nothing was changed, and the client should retry.
    A logout says plainly that it did not happen — the user is still logged
    in — rather than leave them to believe a shared computer is safe.
    """
    error = sys.exc_info()[1]
    if not isinstance(error, UNREACHABLE):
        return defaults.server_error(request)
    if getattr(request.resolver_match, "url_name", None) in LOGOUT_ROUTES:
        message = LOGOUT_REFUSED
    elif isinstance(error, SessionChangeRefused):
        message = SESSION_NOT_CHANGED
    else:
        message = SESSION_STORE_DOWN
    headers = {"Retry-After": "5"}
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message}, status=503, headers=headers)
    return HttpResponse(
        message, status=503, headers=headers, content_type="text/plain; charset=utf-8"
    )


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for nginx and the lab: answers without touching the session."""
    return JsonResponse({"ok": True, "instance": settings.INSTANCE_NAME})


def _jwt_mode() -> bool:
    return get_mode(settings.SESSION_MODE).is_jwt


def _cart(request: HttpRequest) -> Cart:
    store = cart_store_for(request)
    return store.load() if store is not None else Cart()


def catalog(request: HttpRequest) -> HttpResponse:
    category = request.GET.get("category", "")
    products = Product.objects.all()
    if category:
        products = products.filter(category=category)
    return render(
        request,
        "shop/catalog.html",
        {
            "products": products,
            "categories": Product.CATEGORIES,
            "category": category,
            "cart": _cart(request),
        },
    )


def product_detail(request: HttpRequest, pk: int) -> HttpResponse:
    product = get_object_or_404(Product, pk=pk)
    return render(
        request,
        "shop/product.html",
        {"product": product, "cart": _cart(request), "in_cart": _cart(request).quantity(pk)},
    )


def _store_or_login(request: HttpRequest):
    store = cart_store_for(request)
    if store is None:
        messages.info(request, "In jwt mode the cart belongs to a user: log in first.")
    return store


@require_POST
def cart_add(request: HttpRequest, pk: int) -> HttpResponse:
    product = get_object_or_404(Product, pk=pk)
    store = _store_or_login(request)
    if store is None:
        return redirect(f"{settings.LOGIN_URL}?next=/products/{pk}/")
    form = QuantityForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a quantity between 1 and 99.")
        return redirect("product", pk=pk)
    try:
        services.cart_add_item(store, product.pk, form.cleaned_data["quantity"])
    except CartTooLargeError as error:
        messages.error(request, str(error))
        return redirect("cart")
    messages.success(request, f"Added {product.name} to your cart.")
    return redirect("cart")


@require_POST
def cart_update(request: HttpRequest, pk: int) -> HttpResponse:
    product = get_object_or_404(Product, pk=pk)
    store = _store_or_login(request)
    if store is None:
        return redirect(f"{settings.LOGIN_URL}?next=/cart/")
    form = QuantityForm(request.POST)
    if form.is_valid():
        try:
            services.cart_set_item(store, product.pk, form.cleaned_data["quantity"])
        except CartTooLargeError as error:
            messages.error(request, str(error))
    else:
        messages.error(request, "Choose a quantity between 0 and 99.")
    return redirect("cart")


@require_POST
def cart_remove(request: HttpRequest, pk: int) -> HttpResponse:
    product = get_object_or_404(Product, pk=pk)
    store = _store_or_login(request)
    if store is not None:
        services.cart_remove_item(store, product.pk)
        messages.success(request, f"Removed {product.name}.")
    return redirect("cart")


def cart_page(request: HttpRequest) -> HttpResponse:
    cart = _cart(request)
    return render(
        request,
        "shop/cart.html",
        {
            "cart": cart,
            "lines": services.cart_lines(cart),
            "total": services.cart_total(cart),
            "needs_login": _jwt_mode() and not request.user.is_authenticated,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def checkout(request: HttpRequest) -> HttpResponse:
    store = cart_store_for(request)
    cart = store.load()
    if request.method == "POST":
        # The key the page was rendered with: pressing "Place order" twice, or
        # again after a failed answer, places one order.
        key = request.POST.get("idempotency_key") or None
        try:
            placed = checkout_once(request.user, store, key, PAGE_CHECKOUT)
        except (services.EmptyCartError, InvalidKeyError, KeyReusedError) as error:
            messages.error(request, str(error))
            return redirect("cart")
        order = placed.order
        messages.success(
            request, f"Thank you! Order {order.pk} is placed ({order.instance} took it)."
        )
        return redirect("orders")
    return render(
        request,
        "shop/checkout.html",
        {
            "cart": cart,
            "lines": services.cart_lines(cart),
            "total": services.cart_total(cart),
            "idempotency_key": uuid.uuid4().hex,
        },
    )


@login_required
def orders(request: HttpRequest) -> HttpResponse:
    placed = request.user.orders.prefetch_related("lines__product")
    return render(request, "shop/orders.html", {"orders": placed, "cart": _cart(request)})


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or settings.LOGIN_REDIRECT_URL
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return settings.LOGIN_REDIRECT_URL


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def login_page(request: HttpRequest) -> HttpResponse:
    """Log in: a session in the session modes, token cookies in ``jwt`` mode."""
    form = AuthenticationForm(request, data=request.POST or None)
    refusal = None
    if request.method == "POST":
        username = str(request.POST.get("username", ""))
        refusal = login_throttle.login_refusal(request, username)
        if refusal is None and not form.is_valid():
            login_throttle.record_login_failure(request, username)
    if request.method == "POST" and refusal is None and form.is_valid():
        user = form.get_user()
        login_throttle.clear_login_failures(username)
        response = redirect(_safe_next(request))
        if _jwt_mode():
            set_token_cookies(response, *issue_tokens(user))
        else:
            login(request, user)
        messages.success(request, f"Welcome, {user.get_username()}.")
        return response
    return render(
        request,
        "registration/login.html",
        {
            "form": form,
            "refusal": refusal,
            "next": _safe_next(request),
            "demo_username": "demo",
            "demo_password": settings.DEMO_PASSWORD,
            "cart": _cart(request),
        },
        status=429 if refusal else 200,
    )


@require_POST
def logout_page(request: HttpRequest) -> HttpResponse:
    response = redirect("catalog")
    if _jwt_mode():
        refresh = request.COOKIES.get(settings.JWT_REFRESH_COOKIE)
        if refresh:
            blacklist_refresh(refresh)
        delete_token_cookies(response)
    else:
        logout(request)
    messages.info(request, "You are logged out.")
    return response
