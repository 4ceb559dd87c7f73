from django.urls import path

from shop.api import views

urlpatterns = [
    path("whoami/", views.WhoAmIView.as_view(), name="api-whoami"),
    path("products/", views.ProductListView.as_view(), name="api-products"),
    path("cart/", views.CartView.as_view(), name="api-cart"),
    path("cart/items/<int:product_id>/", views.CartItemView.as_view(), name="api-cart-item"),
    path("checkout/", views.CheckoutView.as_view(), name="api-checkout"),
    path("session/login/", views.SessionLoginView.as_view(), name="api-session-login"),
    path("session/logout/", views.SessionLogoutView.as_view(), name="api-session-logout"),
    path("token/", views.TokenObtainView.as_view(), name="api-token"),
    path("token/refresh/", views.TokenRefreshView.as_view(), name="api-token-refresh"),
    path("token/logout/", views.TokenLogoutView.as_view(), name="api-token-logout"),
]
