"""The comparison report: ``report.md`` for the terminal and a repo, ``report.html`` for a projector.

The HTML is one self-contained file (inline CSS and SVG, no script, no
CDN). Colours are the Okabe-Ito palette, safe for colour-blind readers, and
every failure class also has its own marker shape, so the charts read in
greyscale too.

The markup lives in Jinja2 templates beside this module (``templates/``:
the page, the chart macros, the stylesheet), so the page can be read and
edited as HTML and SVG; this module computes what they show (the table's
cells, the charts' geometry) and renders them. ``report.md`` is plain text
and stays built here.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from markupsafe import Markup

from sessions_lab.experiments.charts import (
    CLASS_STYLE,
    EVENT_COLOUR,
    THROUGHPUT_COLOUR,
    SpreadChart,
    TimeChart,
    marker,
    node_spread_chart,
    spread_chart,
    time_chart,
)
from sessions_lab.experiments.failures import describe
from sessions_lab.experiments.results import FAILURE_CLASSES, read_jsonl
from sessions_lab.modes import MODES, LoadBalancing, get_mode


def _fmt_ms(value: Any) -> str:
    return f"{float(value):.0f}"


def _lost_cell(result: dict[str, Any]) -> str:
    lost = result["users_lost_session"]
    return f"{lost} of {result['users_total']}"


def _faulted_cell(result: dict[str, Any]) -> str:
    on_faulted = result.get("users_lost_on_faulted_instance")
    if on_faulted is None:
        on_faulted = result.get("users_lost_on_faulted_node")
    return "—" if on_faulted is None else str(on_faulted)


def _orders_cell(result: dict[str, Any]) -> str:
    """Acknowledged / lost / doubled: "—" in a summary older than the audit (schema 3)."""
    if result.get("order_audit_error"):
        return "not audited"
    if result.get("orders_lost") is None:
        return "—"
    return f"{result['orders_acknowledged']} / {result['orders_lost']} / {result['orders_doubled']}"


def table_rows(summary: dict[str, Any]) -> list[list[str]]:
    rows = []
    for mode, result in summary["modes"].items():
        if result["verdict"] == "not applicable":
            rows.append(
                [mode, "—", "—", "—", "—", "—", "—", "—", result["expected"], "not applicable"]
            )
            continue
        rows.append(
            [
                mode,
                str(result["requests"]),
                str(result["failed_requests"]),
                _lost_cell(result),
                _faulted_cell(result),
                _orders_cell(result),
                f"{_fmt_ms(result['p50_ms'])} / {_fmt_ms(result['p95_ms'])}",
                f"{result['recovery_s']:.1f}",
                result["expected"],
                result["verdict"],
            ]
        )
    return rows


HEADERS = [
    "mode",
    "requests",
    "failed requests",
    "users who lost their session",
    "of those, on the faulted instance or cache node",
    "orders acknowledged / lost / doubled",
    "p50 / p95 ms",
    "recovery s",
    "predicted",
    "verdict",
]


def headline(summary: dict[str, Any]) -> str:
    """The run in one line; affinity and Redis persistence only where a mode of it uses them."""
    modes = [get_mode(name) for name in summary["modes"] if name in MODES]
    options = [
        *(
            [f"affinity {summary['affinity']}"]
            if any(mode.load_balancing is LoadBalancing.AFFINITY for mode in modes)
            else []
        ),
        summary["db"],
        *(
            [f"Redis persistence {summary['redis_persistence']}"]
            if any(mode.uses_redis for mode in modes)
            else []
        ),
        *(
            [f"replication {summary.get('replication', 'async')}"]
            if any(mode.uses_replication for mode in modes)
            else []
        ),
    ]
    return (
        f"{summary['scenario']}: {summary['instances']} instances, {summary['users']} users, "
        f"{summary['duration_s']} s ({', '.join(options)})"
    )


def markdown(summary: dict[str, Any]) -> str:
    lines = [f"# {headline(summary)}", ""]
    lines.append("| " + " | ".join(HEADERS) + " |")
    lines.append("|" + "---|" * len(HEADERS))
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(summary)]
    lines += [
        "",
        "*failed requests*: connection errors and 5xx. *Lost their session*: a user found itself "
        "logged out, or its cart differed from what it had put in, at least once. *Orders*: "
        "checkouts the shop acknowledged (201), those of them not in the database (lost), "
        "and orders placed twice for one checkout (doubled).",
        "",
        "Fault events: "
        + "; ".join(
            f"{e['t']:.0f} s {e['action']} {e['target']}"
            + (f" ({e['signal']})" if e.get("signal") else "")
            for e in _any_events(summary)
        ),
        "",
    ]
    for mode, result in summary["modes"].items():
        notes = [
            *verdict_notes(result),
            *node_notes(result),
            *replication_notes(mode, result, summary),
            *server_notes(result),
        ]
        if notes:
            lines += [f"{mode}:", *(f"- {note}" for note in notes), ""]
        failed = failed_request_lines(result)
        if failed:
            lines += [f"{mode}, failed requests:", *(f"- {line}" for line in failed), ""]
    return "\n".join(lines)


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


def _any_events(summary: dict[str, Any]) -> list[dict[str, Any]]:
    for result in summary["modes"].values():
        if result["events"]:
            return result["events"]
    return []


# ------------------------------------------------------------------ rendering


@dataclass(frozen=True)
class Section:
    """One mode that ran: its verdict and its two charts."""

    mode: str
    verdict: str
    expected: str
    timeline: TimeChart
    spread: SpreadChart
    node_spread: SpreadChart | None  # by cache node, where the store is memcached nodes
    notes: list[str]  # why unexpected; what the servers' logs add: re-sent requests, late writes
    failed: list[dict[str, Any]]  # failed_request_groups: each failure, where, when and why


# A line break plus the indentation after it, in a template's literal text.
_LINE_BREAK = re.compile(r"\n[ \t]*")


class JoinedLines(Extension):
    """Drops the line breaks (and the indentation after them) of ``.j2`` templates.

    report.html has always been one line; Jinja's ``{%-`` markers could get
    there too, but on nearly every tag. The trade-off: a space the output
    needs cannot sit at a line break, so prose stays on one line. Tokens keep
    their line numbers, so errors still point at the right line. Other files
    (the stylesheet) are included verbatim.
    """

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        joined = (stream.name or "").endswith(".j2")
        for token in stream:
            if joined and token.type == "data":
                token = Token(token.lineno, "data", _LINE_BREAK.sub("", token.value))
            yield token


def _escaped_as_before(value: Any) -> Any:
    """Escape text with ``html.escape``, applied before autoescaping sees it.

    Autoescaping alone would write ``'`` as ``&#39;`` and ``"`` as ``&#34;``;
    ``html.escape`` writes ``&#x27;`` and ``&quot;``. A browser shows both the
    same; this spelling keeps report.html byte for byte what the lab has
    always written, so reports of old and new runs diff cleanly (scenario
    predictions do contain apostrophes). Markup (the macros' output) passes
    untouched.
    """
    if isinstance(value, str) and not isinstance(value, Markup):
        return Markup(html.escape(value))  # noqa: S704 - escaped right here
    return value


_TEMPLATES = Environment(
    loader=PackageLoader("sessions_lab.experiments", "templates"),
    autoescape=True,
    keep_trailing_newline=True,
    finalize=_escaped_as_before,
    undefined=StrictUndefined,
    extensions=[JoinedLines],
)
_TEMPLATES.filters["f1"] = lambda value: f"{value:.1f}"
_TEMPLATES.globals.update(
    throughput_colour=THROUGHPUT_COLOUR,
    event_colour=EVENT_COLOUR,
    hatch_colour=CLASS_STYLE["logged_out"][0],
)


def html_report(summary: dict[str, Any], out_dir: Path) -> str:
    sections = []
    for mode, result in summary["modes"].items():
        if result["verdict"] == "not applicable":
            continue
        folder = out_dir / mode
        timeline = read_jsonl(folder / "timeline.jsonl")
        users = read_jsonl(folder / "users.jsonl")
        sections.append(
            Section(
                mode,
                result["verdict"],
                result["expected"],
                time_chart(timeline, result["events"], summary["duration_s"]),
                spread_chart(result, users),
                node_spread_chart(result, users),
                [
                    *verdict_notes(result),
                    *node_notes(result),
                    *replication_notes(mode, result, summary),
                    *server_notes(result),
                ],
                result.get("failed_request_groups", []),
            )
        )
    return _TEMPLATES.get_template("report.html.j2").render(
        title=headline(summary),
        headers=HEADERS,
        rows=table_rows(summary),
        failure_classes=", ".join(FAILURE_CLASSES),
        legend_markers=[
            (marker(shape, 9, 9, colour), label) for colour, shape, label in CLASS_STYLE.values()
        ],
        sections=sections,
    )


def write_reports(summary: dict[str, Any], out_dir: Path) -> None:
    (out_dir / "report.md").write_text(markdown(summary), encoding="utf-8")
    (out_dir / "report.html").write_text(html_report(summary, out_dir), encoding="utf-8")
