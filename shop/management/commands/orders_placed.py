"""``orders_placed --since T``: the orders the database holds, as JSON, for the lab's order audit.

After an experiment the lab compares what the shoppers were told (each 201
and its order id) with what was stored: an order acknowledged but missing is
lost, two orders for one checkout (one ``Idempotency-Key``) are doubled. This
command is the database's side, read through the lab's own environment (the
native lab's ``manage``, or ``docker compose exec``), whatever the database.
"""

import json
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser

from shop.models import CheckoutKey, Order


class Command(BaseCommand):
    help = "Print the orders placed since a Unix time as JSON: id, user, total, instance, key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since", type=float, default=0.0, help="Unix time: only orders created from then on"
        )

    def handle(self, *args: object, since: float, **options: object) -> None:
        if since < 0:
            raise CommandError("--since is a Unix time, 0 or more")
        orders = list(
            Order.objects.filter(created_at__gte=datetime.fromtimestamp(since, tz=UTC))
            .order_by("id")
            .values_list("id", "user__username", "total", "instance", "created_at")
        )
        keys = dict(
            CheckoutKey.objects.filter(order_id__in=[order[0] for order in orders]).values_list(
                "order_id", "key"
            )
        )
        placed = [
            {
                "id": order_id,
                "user": username,
                "total": str(total),
                "instance": instance,
                "created_at": round(created_at.timestamp(), 3),
                "key": keys.get(order_id),
            }
            for order_id, username, total, instance, created_at in orders
        ]
        self.stdout.write(json.dumps(placed))
