"""``seed_catalog N``: grow the catalog to N products, so a cart can reach the cookie ceiling.

A signed-cookie session carries the whole cart, zlib-compressed: about
1,350 one-item lines push it past the 4 KB a browser keeps (measured
here), so the demonstration needs a catalog of ~1,500 products.
"""

from decimal import Decimal

from django.core.management.base import BaseCommand, CommandParser

from shop.models import Product


class Command(BaseCommand):
    help = "Add sample products until the catalog holds N."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("count", type=int, help="how many products the catalog should hold")

    def handle(self, *args: object, count: int, **options: object) -> None:
        have = Product.objects.count()
        missing = max(0, count - have)
        Product.objects.bulk_create(
            Product(
                name=f"Sample beans no. {number}",
                category="coffee",
                price=Decimal("5.00") + Decimal(number % 20),
                description="A sample product, added by seed_catalog.",
            )
            for number in range(have + 1, have + missing + 1)
        )
        self.stdout.write(f"The catalog holds {have + missing} products ({missing} added).")
