from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"
    verbose_name = "Shop"

    def ready(self) -> None:
        from shop.api import schema  # noqa: F401 - registers the OpenAPI auth extensions
