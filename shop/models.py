"""Catalog, orders, and the per-user cart rows (and cart version) that only ``jwt`` mode uses."""

from decimal import Decimal

from django.conf import settings
from django.db import models


class Product(models.Model):
    CATEGORIES = [
        ("coffee", "Coffee"),
        ("tea", "Tea"),
        ("gear", "Brewing gear"),
        ("mugs", "Mugs"),
    ]

    name = models.CharField(max_length=100)
    category = models.CharField(max_length=20, choices=CATEGORIES)
    price = models.DecimalField(max_digits=8, decimal_places=2)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["category", "name"]

    def __str__(self) -> str:
        return self.name


class Order(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="orders"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    total = models.DecimalField(max_digits=10, decimal_places=2)
    # Which instance took the order: the workshop can see checkout work anywhere.
    instance = models.CharField(max_length=50)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Order {self.pk}"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=8, decimal_places=2)

    def __str__(self) -> str:
        return f"{self.quantity} × {self.product}"

    @property
    def subtotal(self) -> Decimal:
        return self.unit_price * self.quantity


class CartLine(models.Model):
    """One line of a logged-in user's cart, in ``jwt`` mode (the token carries identity only).

    A row per line, not one blob per cart: two tabs changing different lines
    both keep their change, where a session blob keeps only the last save.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="cart_lines"
    )
    product = models.ForeignKey(Product, on_delete=models.CASCADE)
    quantity = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "product"], name="one_cart_line_per_product")
        ]

    def __str__(self) -> str:
        return f"{self.user}: {self.quantity} × {self.product}"


class CartVersion(models.Model):
    """How many times a user's cart has changed, in ``jwt`` mode: the cart's ETag (``"cart-N"``).

    One row per user, none until the cart first changes (version 0). Every
    change of the lines bumps it in the same transaction; a conditional write
    (If-Match) as a compare-and-set, so of two instances that both passed the
    check only one writes: the other's late copy of a request is refused (412).
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="cart_version",
    )
    version = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.user}: cart version {self.version}"


class LoginFailure(models.Model):
    """One failed login, kept in the database every instance shares.

    Login throttling counts these rows: a limit kept in one instance's
    memory is no limit when the load balancer spreads the attempts over three.
    """

    username = models.CharField(max_length=150, db_index=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True, db_index=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.username} from {self.client_ip} at {self.at:%H:%M:%S}"


class CheckoutKey(models.Model):
    """A checkout's ``Idempotency-Key``: the order it placed, so a repeat places none.

    A client that did not hear the answer (an instance died mid-checkout,
    nginx re-sent the request elsewhere) sends the same key again and gets the
    same order back. ``fingerprint`` says which request the key was first used
    for; ``lines`` which cart it bought, so a replay can finish emptying it.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="checkout_keys"
    )
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="+")
    lines = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="one_order_per_checkout_key")
        ]

    def __str__(self) -> str:
        return f"{self.user}: {self.key} → order {self.order_id}"
