"""``seed_catalog N``: grow the catalog to N products, so a cart can reach the cookie ceiling.

A signed-cookie session carries the whole cart, zlib-compressed: about
1,350 one-item lines push it past the 4 KB a browser keeps (measured
here), so the demonstration needs a catalog of ~1,500 products.
``seed_catalog --reset`` takes the sample products out again, so later
experiments shop the usual catalog (samples someone has ordered stay: an
order keeps its products).
"""

from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import ProtectedError

from shop.models import Product

SAMPLE = "A sample product, added by seed_catalog."


class Command(BaseCommand):
    help = "Add sample products until the catalog holds N (--reset: remove them again)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "count", type=int, nargs="?", help="how many products the catalog should hold"
        )
        parser.add_argument("--reset", action="store_true", help="remove the sample products")

    def handle(self, *args: object, count: int | None, reset: bool, **options: object) -> None:
        if reset:
            self.stdout.write(self.reset())
            return
        if count is None:
            raise CommandError("say how many products the catalog should hold, or --reset")
        have = Product.objects.count()
        missing = max(0, count - have)
        Product.objects.bulk_create(
            Product(
                name=f"Sample beans no. {number}",
                category="coffee",
                price=Decimal("5.00") + Decimal(number % 20),
                description=SAMPLE,
            )
            for number in range(have + 1, have + missing + 1)
        )
        self.stdout.write(f"The catalog holds {have + missing} products ({missing} added).")

    def reset(self) -> str:
        samples = Product.objects.filter(description=SAMPLE)
        ordered = samples.filter(orderline__isnull=False).distinct()
        try:
            _, by_model = samples.exclude(pk__in=ordered).delete()
        except ProtectedError as error:  # ordered between the two queries
            raise CommandError(f"a sample product was ordered meanwhile: {error}") from None
        removed, kept = by_model.get(Product._meta.label, 0), ordered.count()
        return f"{removed} sample products removed; the catalog holds {Product.objects.count()}" + (
            f" ({kept} kept: they are in orders)." if kept else "."
        )
