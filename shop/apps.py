from typing import Any

from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_in
from django.core.signals import setting_changed
from django.db.models.signals import post_delete, post_save

from shop import verified

# Settings that decide whether a signed cookie or token passes its check.
SIGNING_SETTINGS = {
    "SECRET_KEY",
    "SECRET_KEY_FALLBACKS",
    "SESSION_COOKIE_AGE",
    "SESSION_ENCRYPTION_KEYS",
    "SIMPLE_JWT",
}


def forget_verified_values(*, setting: str, **_signal: Any) -> None:
    """A change of keys or lifetimes (tests' override_settings) makes every remembered check stale."""
    if setting in SIGNING_SETTINGS:
        verified.forget_everything()


class ShopConfig(AppConfig):
    name = "shop"
    verbose_name = "Shop"

    def ready(self) -> None:
        from shop import services, timeouts
        from shop.api import schema  # noqa: F401 - registers the OpenAPI auth extensions
        from shop.models import Product
        from shop.sessions import encryption

        encryption.check_keys()  # a malformed key stops the instance here, not a request

        # A price changed in this process shows in its next cart total.
        for signal in (post_save, post_delete):
            signal.connect(services.PRICES.clear, sender=Product)
        setting_changed.connect(forget_verified_values)
        user_logged_in.connect(_cart_to_rows, dispatch_uid="shop.cart_to_rows")
        # --session-absolute: the session remembers when its user logged in.
        user_logged_in.connect(timeouts.remember_login_time, dispatch_uid="shop.login_time")


def _cart_to_rows(*, request: Any, user: Any, **_signal: Any) -> None:
    from shop.cart import move_session_cart_to_rows

    if request is not None:
        move_session_cart_to_rows(request, user)
