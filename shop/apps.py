from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class ShopConfig(AppConfig):
    name = "shop"
    verbose_name = "Shop"

    def ready(self) -> None:
        from shop import services
        from shop.api import schema  # noqa: F401 - registers the OpenAPI auth extensions
        from shop.models import Product

        # A price changed in this process shows in its next cart total.
        for signal in (post_save, post_delete):
            signal.connect(services.PRICES.clear, sender=Product)
