"""The order audit: what clients were told about their checkouts, against what was stored.

Used by the experiments (per mode, from the shoppers' files) and the bench (its kill stream).

Each shopper keeps the orders the shop acknowledged (201: the order id, the
total it was charged, the ``Idempotency-Key`` it sent) and the keys of the
checkouts no 201 acknowledged (no answer after every attempt, or a refusal
after a retry). After the run the runner reads the
database's side (``manage.py orders_placed --since T``, one JSON list). An
order acknowledged but not stored is **lost**; two stored orders for one
key — or a stored order no shopper's key accounts for — are **doubled**; a
stored total other than the one acknowledged is **charged wrong**; an order
stored for a checkout whose client got no 201 is **unacknowledged** (the
client thinks it failed: the shop kept an order nobody was told about).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

ORDERS_FILE = "orders.json"


def _money(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def audit(users: Sequence[Mapping[str, Any]], folder: Path) -> dict[str, Any]:
    """summary.json's order fields for one mode, from the users file and ``orders.json``."""
    path = folder / ORDERS_FILE
    stored_text = path.read_text(encoding="utf-8") if path.is_file() else ""
    try:
        placed = json.loads(stored_text) if stored_text else None
    except ValueError:
        placed = None
    acknowledged = {
        str(order.get("order")): order for user in users for order in user.get("orders", [])
    }
    unacknowledged = {k for user in users for k in user.get("checkouts_unacknowledged", [])}
    if not isinstance(placed, list):
        error = placed.get("error") if isinstance(placed, dict) else None
        return unread(len(acknowledged), error or "the database's orders were not read")
    # Only the shoppers' orders: a person using the shop during the run is not audited.
    shoppers = {str(user.get("user")) for user in users}
    return compare(
        acknowledged, unacknowledged, [o for o in placed if str(o.get("user")) in shoppers]
    )


def unread(acknowledged: int, error: str) -> dict[str, Any]:
    """The audit's fields when the database's side could not be read: counts None, and why."""
    return {
        "orders_acknowledged": acknowledged,
        **dict.fromkeys(
            ("orders_stored", "orders_lost", "orders_doubled", "orders_wrong_total",
             "orders_unacknowledged"),
            None,
        ),
        "order_audit_error": error,
    }  # fmt: skip


def compare(
    acknowledged: Mapping[str, Mapping[str, Any]],
    unacknowledged: set[str],
    placed: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The audit's counts: ``acknowledged`` maps each order id a client was given (as text) to
    ``{"total", "key"}``; ``unacknowledged`` holds the keys of checkouts no 201 acknowledged;
    ``placed`` is what ``orders_placed`` printed for the same clients."""
    stored = {str(order.get("id")): order for order in placed}
    sent_keys = {order.get("key") for order in acknowledged.values()} | unacknowledged
    per_key = Counter(order.get("key") for order in placed)
    doubled = sum(count - 1 for key, count in per_key.items() if key in sent_keys and count > 1)
    doubled += sum(1 for order in placed if order.get("key") not in sent_keys)
    return {
        "orders_acknowledged": len(acknowledged),
        "orders_stored": len(stored),
        "orders_lost": sum(1 for order_id in acknowledged if order_id not in stored),
        "orders_doubled": doubled,
        "orders_wrong_total": sum(
            1
            for order_id, order in acknowledged.items()
            if order_id in stored
            and _money(stored[order_id].get("total")) != _money(order.get("total"))
        ),
        "orders_unacknowledged": sum(1 for order in placed if order.get("key") in unacknowledged),
        "order_audit_error": None,
    }
