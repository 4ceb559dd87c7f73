"""What the report says about each mode's run, in sentences: below its chart and in report.md.

Each function turns one part of a mode's ``summary.json`` entry into
sentences, and says nothing where that part measured nothing: the verdict's
reason, users by cache node, a replicated store's failover, two tabs'
lost updates, idle logins, and what nginx and the instances logged.
"""

from __future__ import annotations

from typing import Any

from sessions_lab.experiments.failures import describe
from sessions_lab.modes import MODES, get_mode


def mode_notes(mode: str, result: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    """Every sentence the report says about one mode's run, in the order it says them."""
    return [
        *verdict_notes(result),
        *node_notes(result),
        *replication_notes(mode, result, summary),
        *update_notes(mode, result, summary),
        *pause_notes(result, summary),
        *server_notes(result),
    ]


def update_notes(mode: str, result: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    """Two tabs writing at once: how many acknowledged cart updates the cart then lacked."""
    acknowledged = result.get("updates_acknowledged", 0)
    if not acknowledged:
        return []
    lost = result.get("lost_updates", 0)
    whole = mode in MODES and get_mode(mode).saves_cart_whole
    where = (
        "saved whole with the session"
        if whole and summary.get("cart_store", "session") == "session"
        else "kept as database rows per line"
    )
    return [
        f"Two tabs: {lost} of {acknowledged} cart updates the shop acknowledged were lost "
        f"({100 * lost / acknowledged:.0f}%): the cart was {where}."
    ]


def pause_notes(result: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    """Idle logins: who paused past the idle limit and was logged out, and who else was."""
    paused = result.get("users_paused", 0)
    if not paused:
        return []
    return [
        f"Idle limit {summary.get('session_idle')} s: {result['users_paused_logged_out']} of the "
        f"{paused} shoppers who paused were logged out on their return; "
        f"{result['users_active_logged_out']} of those who kept shopping were."
    ]


def verdict_notes(result: dict[str, Any]) -> list[str]:
    """Why the verdict is "unexpected", and what the order audit could not do."""
    notes = []
    if result.get("verdict_reason"):
        notes.append(f"Unexpected: {result['verdict_reason']}.")
    if result.get("order_audit_error"):
        notes.append(f"The orders could not be audited: {result['order_audit_error']}.")
    elif result.get("orders_unacknowledged"):
        count = result["orders_unacknowledged"]
        notes.append(
            f"{count} order{'s were' if count != 1 else ' was'} placed for a checkout whose "
            "client got no 201, even after retrying with its Idempotency-Key."
        )
    return notes


def node_notes(result: dict[str, Any]) -> list[str]:
    """Users by the cache node their session was on before the fault, beside
    ``users_by_instance`` (memcached nodes only)."""
    by_node = result.get("users_by_node") or {}
    if not by_node:
        return []
    faulted = result.get("faulted_node")
    counts = ", ".join(
        f"{node} {count}" + (" (faulted)" if node == faulted else "")
        for node, count in by_node.items()
    )
    by_instance = ", ".join(f"{i} {n}" for i, n in result.get("users_by_instance", {}).items())
    note = f"Users by cache node: {counts}; by instance: {by_instance}."
    if faulted:
        note += (
            f" Of the {result['users_on_faulted_node']} users on {faulted}, "
            f"{result['users_lost_on_faulted_node']} lost their session there; "
            f"{result['users_lost_session']} lost one in all."
        )
    return [note]


def replication_notes(mode: str, result: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    """What the primary's failover cost a replicated mode: write outage, losses, stale reads."""
    if mode not in MODES or not get_mode(mode).uses_replication:
        return []
    replication = summary.get("replication", "async")
    waited = (
        "each save waited for a replica's acknowledgement"
        if replication == "sync"
        else "each save was acknowledged before any replica had it"
    )
    return [
        f"Replication {replication} ({waited}): session writes failed for "
        f"{result.get('write_unavailable_s', 0):.1f} s; {result['users_lost_session']} users "
        f"lost their session or a write; {result.get('stale_reads', 0)} stale reads "
        "(a cart older than the user's own acknowledged write, right when read again)."
    ]


def failed_request_lines(result: dict[str, Any]) -> list[str]:
    """Each group of identical failed requests, in one line: when, what, where, why."""
    return [
        ("" if group["explained"] else "UNEXPLAINED: ") + describe(group)
        for group in result.get("failed_request_groups", [])
    ]


def server_notes(result: dict[str, Any]) -> list[str]:
    """Sentences on what nginx and the instances logged during the run (summary schema 2)."""
    notes = []
    kept = result.get("users_pinned_kept", [])
    if kept:
        pinned = result.get("users_pinned_to_faulted_instance") or len(kept)
        notes.append(
            f"{len(kept)} of the {pinned} users pinned to {result.get('faulted_instance')} kept "
            "their session: " + "; ".join(f"{user['user']}: {user['why']}" for user in kept) + "."
        )
    retried = result.get("retried_requests", 0)
    if retried:
        notes.append(
            f"nginx re-sent {retried} request{'s' if retried != 1 else ''} to another instance "
            "after the first refused the connection or timed out."
        )
    for write in result.get("late_writes", []):
        whose = f" for {write['user']}" if write["user"] else ""
        client = (
            f"; meanwhile the client got {write['client_got']}"
            + (f" from {write['client_served_by']}" if write["client_served_by"] else "")
            if write.get("client_got")
            else ""
        )
        client_failed = int(write.get("client_got") or 0) >= 500
        applied = (
            "applied it, although the client had been told it failed"
            if client_failed
            else "applied it a second time"
        ) + (
            ", over a newer cart (the user then found a cart it had not set)"
            if write["overwrote"]
            else ""
        )
        outcome = {
            "applied": applied,
            "refused": "refused it with 412: its If-Match named an older cart",
            "failed": f"answered {write['status']}",
        }[write["outcome"]]
        notes.append(
            f"Late write at {write['t']:.1f} s: {write['instance']} answered {write['request']}"
            f"{whose} {write['late_by_s']:.1f} s after nginx sent it{client}; it {outcome}."
        )
    return notes
