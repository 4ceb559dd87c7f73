"""URLs: the shop's pages, its JSON API, the API schema, and the health check."""

from django.urls import include, path, re_path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from shop import views
from shop.api import errors as api_errors

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    # Early in the list: Django tries each pattern in turn, and the API's cart
    # read is the shop's busiest request.
    path("api/", include("shop.api.urls")),
    path("", views.catalog, name="catalog"),
    path("products/<int:pk>/", views.product_detail, name="product"),
    path("cart/", views.cart_page, name="cart"),
    path("cart/add/<int:pk>/", views.cart_add, name="cart-add"),
    path("cart/update/<int:pk>/", views.cart_update, name="cart-update"),
    path("cart/remove/<int:pk>/", views.cart_remove, name="cart-remove"),
    path("checkout/", views.checkout, name="checkout"),
    path("orders/", views.orders, name="orders"),
    path("accounts/login/", views.login_page, name="login"),
    path("accounts/logout/", views.logout_page, name="logout"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Last: whatever else is under /api/ is a JSON 404, not Django's HTML page.
    re_path(r"^api(?:/|$)", api_errors.not_found, name=api_errors.NOT_FOUND_ROUTE),
]

# Django's error pages, except under /api/, where the answer is JSON too.
handler400 = api_errors.json_under_api(defaults.bad_request)
handler403 = api_errors.json_under_api(defaults.permission_denied)
# An unreachable session store is a 503 (see shop.views.server_error).
handler500 = api_errors.json_under_api(views.server_error)
