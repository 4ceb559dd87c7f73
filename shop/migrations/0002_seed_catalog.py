"""Seed the catalog, so a fresh database is a shop straight away."""

from decimal import Decimal

from django.db import migrations

from shop.catalog_data import PRODUCTS


def seed(apps, schema_editor):
    Product = apps.get_model("shop", "Product")
    if Product.objects.exists():
        return
    Product.objects.bulk_create(
        Product(category=category, name=name, price=Decimal(price), description=description)
        for category, name, price, description in PRODUCTS
    )


def unseed(apps, schema_editor):
    Product = apps.get_model("shop", "Product")
    Product.objects.filter(name__in=[name for _, name, _, _ in PRODUCTS]).delete()


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
