"""What the servers' own logs say about a mode's run: re-sent requests and late writes.

The shoppers see answers; only nginx and the instances see *how* an answer
came about. nginx's access log (``logs/nginx-access.jsonl``, one JSON object
a line) lists two upstream addresses for a request it re-sent to another
instance: the stopping instance refused it, or a hung one timed out. An
instance logs a ``late write`` (``shop/middleware.py``) when it answers a
write after nginx has stopped waiting for it: a hung instance that resumed
and applied a request that nginx had already re-sent elsewhere (a PUT, a
DELETE) or failed with 504 (a POST). Both logs carry nginx's request id, so
each late write is matched to what the client got.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

NGINX_ACCESS_LOG = "nginx-access.jsonl"
NGINX_ERROR_LOG = "nginx.log"  # its error log, beside every other process's log
LATE_WRITE = "late write "
REFUSED = 412  # Precondition Failed: the write's If-Match named an older cart


def access_lines(logs: Path) -> list[dict[str, Any]]:
    """nginx's access log, a dict a line; read once per mode and handed to the readers below."""
    path = logs / NGINX_ACCESS_LOG
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut off by the stop
        if isinstance(record, dict):
            records.append(record)
    return records


def upstreams(record: Mapping[str, Any]) -> list[str]:
    """The instance addresses nginx tried for this request, in order."""
    return [a.strip() for a in str(record.get("upstream_addr", "")).split(",") if a.strip()]


def was_resent(record: Mapping[str, Any]) -> bool:
    """nginx tried more than one instance for this request."""
    return len(upstreams(record)) > 1


def retried_requests(access: Sequence[Mapping[str, Any]]) -> int:
    """Requests nginx re-sent to another instance after the first one failed or timed out."""
    return sum(1 for record in access if was_resent(record))


def late_write_lines(logs: Path) -> Iterator[dict[str, Any]]:
    """The ``late write {json}`` lines of every instance's log."""
    for path in sorted(logs.glob("app*.log")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            _, found, payload = line.partition(LATE_WRITE)
            if not found:
                continue
            try:
                record = json.loads(payload)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


def late_writes(
    logs: Path,
    access: Sequence[Mapping[str, Any]],
    users: Sequence[Mapping[str, Any]],
    origin: float,
) -> list[dict[str, Any]]:
    """Each late write, on the load's clock (``origin``: Unix time of its 0 s).

    ``outcome``: ``applied`` (the instance wrote it, a second time),
    ``refused`` (412: its If-Match named a cart that had moved on), or
    ``failed`` (any other answer). ``overwrote``: an applied write whose user
    later found a cart it had not set — the write undid something newer.
    ``client_got``: what nginx answered the client for the same request id
    (the re-sent copy's status, or 504), and from which instance. The
    re-sent copy itself is not a late write, though it carries the first
    attempt's ``X-Request-Start``: its instance is the one that answered.
    """
    clients = {str(r.get("request_id")): r for r in access if r.get("request_id")}
    found_cart_changed = {
        str(user.get("user")): float(user["first_loss_at"])
        for user in users
        if user.get("losses", {}).get("cart_mismatch") and user.get("first_loss_at") is not None
    }
    writes = []
    for record in late_write_lines(logs):
        client = clients.get(str(record.get("request_id")), {})
        if client.get("served_by") and client.get("served_by") == record.get("instance"):
            # The copy nginx re-sent: it carries the first attempt's start
            # time, so it looks late, but its answer is the one the client got.
            continue
        status = int(record.get("status", 0))
        outcome = "applied" if status < 400 else "refused" if status == REFUSED else "failed"
        user = str(record.get("user") or "")
        at = float(record.get("at", 0))
        writes.append(
            {
                "t": round(at - origin, 1),
                "instance": record.get("instance", ""),
                "request": f"{record.get('method', '')} {record.get('path', '')}",
                "user": user,
                "late_by_s": round(at - float(record.get("sent_at", at)), 1),
                "status": status,
                "outcome": outcome,
                "overwrote": outcome == "applied" and found_cart_changed.get(user, -1.0) >= at,
                "client_got": client.get("status"),
                "client_served_by": client.get("served_by") or None,
            }
        )
    return sorted(writes, key=lambda write: write["t"])
