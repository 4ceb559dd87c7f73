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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from markupsafe import Markup

from sessions_lab.cluster.config import ShopOptions
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
from sessions_lab.experiments.notes import failed_request_lines, mode_notes
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


def orders_line(result: dict[str, Any]) -> str:
    """The order audit in a few words, for the runner's line per mode."""
    if result.get("order_audit_error"):
        return "not audited"
    return (
        f"{result['orders_acknowledged']} acknowledged / {result['orders_stored']} stored"
        f" ({result['orders_lost']} lost, {result['orders_doubled']} doubled)"
    )


# Columns only some scenarios measure, shown where a mode of the run measured them:
# (header, the field that says it did, the cell).
MEASURED_COLUMNS: tuple[tuple[str, str, Callable[[dict[str, Any]], str]], ...] = (
    (
        "cart updates lost / acknowledged (two tabs)",
        "updates_acknowledged",
        lambda result: f"{result.get('lost_updates', 0)} / {result['updates_acknowledged']}",
    ),
    (
        "paused shoppers logged out / paused; others logged out",
        "users_paused",
        lambda result: (
            f"{result['users_paused_logged_out']} / {result['users_paused']}; "
            f"{result['users_active_logged_out']}"
        ),
    ),
)


def measured_columns(summary: dict[str, Any]) -> list[tuple[str, str, Callable[..., str]]]:
    modes = summary["modes"].values()
    return [column for column in MEASURED_COLUMNS if any(r.get(column[1]) for r in modes)]


def headers(summary: dict[str, Any]) -> list[str]:
    extra = [header for header, _, _ in measured_columns(summary)]
    return [*HEADERS[:-2], *extra, *HEADERS[-2:]]


def table_rows(summary: dict[str, Any]) -> list[list[str]]:
    rows = []
    extra = measured_columns(summary)
    for mode, result in summary["modes"].items():
        if result["verdict"] == "not applicable":
            dashes = ["—"] * (len(HEADERS) - 3 + len(extra))
            rows.append([mode, *dashes, result["expected"], "not applicable"])
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
                *(cell(result) if result.get(field) else "—" for _, field, cell in extra),
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
        # --cart-store, --encrypt-sessions, --session-idle, --session-absolute, where given.
        *filter(None, [ShopOptions.from_dict(summary).describe()]),
        *([f"{workers} Locust workers"] if (workers := summary.get("load_workers", 1)) > 1 else []),
    ]
    return (
        f"{summary['scenario']}: {summary['instances']} instances, {summary['users']} users, "
        f"{summary['duration_s']} s ({', '.join(options)})"
    )


def markdown(summary: dict[str, Any]) -> str:
    lines = [f"# {headline(summary)}", ""]
    lines.append("| " + " | ".join(headers(summary)) + " |")
    lines.append("|" + "---|" * len(headers(summary)))
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(summary)]
    lines += [
        "",
        "*failed requests*: connection errors and 5xx. *Lost their session*: a user found itself "
        "logged out, or its cart differed from what it had put in, at least once. *Orders*: "
        "checkouts the shop acknowledged (201), those of them not in the database (lost), "
        "and orders placed twice for one checkout (doubled).",
        "",
        "Fault events: "
        + (
            "; ".join(
                f"{e['t']:.0f} s {e['action']} {e['target']}"
                + (f" ({e['signal']})" if e.get("signal") else "")
                for e in _any_events(summary)
            )
            or "none"
        ),
        "",
    ]
    for mode, result in summary["modes"].items():
        notes = mode_notes(mode, result, summary)
        if notes:
            lines += [f"{mode}:", *(f"- {note}" for note in notes), ""]
        failed = failed_request_lines(result)
        if failed:
            lines += [f"{mode}, failed requests:", *(f"- {line}" for line in failed), ""]
    return "\n".join(lines)


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
                mode_notes(mode, result, summary),
                result.get("failed_request_groups", []),
            )
        )
    return _TEMPLATES.get_template("report.html.j2").render(
        title=headline(summary),
        headers=headers(summary),
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
