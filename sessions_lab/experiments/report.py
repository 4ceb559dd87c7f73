"""The comparison report: ``report.md`` for the terminal and a repo, ``report.html`` for a projector.

The HTML is one self-contained file (inline CSS and SVG, no script, no
CDN). Colours are the Okabe-Ito palette, safe for colour-blind readers, and
every failure class also has its own marker shape, so the charts read in
greyscale too.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from sessions_lab.experiments.results import FAILURE_CLASSES, read_jsonl

# Okabe-Ito colours, one marker shape per class.
CLASS_STYLE = {
    "logged_out": ("#D55E00", "circle", "logged out"),
    "cart_mismatch": ("#CC79A7", "square", "cart mismatch"),
    "csrf": ("#009E73", "diamond", "CSRF refused"),
    "http_5xx": ("#E69F00", "triangle", "HTTP 5xx"),
    "connection": ("#000000", "cross", "connection failed"),
}
THROUGHPUT_COLOUR = "#0072B2"
EVENT_COLOUR = "#0072B2"


def _fmt_ms(value: Any) -> str:
    return f"{float(value):.0f}"


def _lost_cell(result: dict[str, Any]) -> str:
    lost = result["users_lost_session"]
    return f"{lost} of {result['users_total']}"


def _faulted_cell(result: dict[str, Any]) -> str:
    on_faulted = result.get("users_lost_on_faulted_instance")
    return "—" if on_faulted is None else str(on_faulted)


def table_rows(summary: dict[str, Any]) -> list[list[str]]:
    rows = []
    for mode, result in summary["modes"].items():
        if result["verdict"] == "not applicable":
            rows.append([mode, "—", "—", "—", "—", "—", "—", result["expected"], "not applicable"])
            continue
        rows.append(
            [
                mode,
                str(result["requests"]),
                str(result["failed_requests"]),
                _lost_cell(result),
                _faulted_cell(result),
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
    "of those, pinned to the faulted instance",
    "p50 / p95 ms",
    "recovery s",
    "predicted",
    "verdict",
]


def headline(summary: dict[str, Any]) -> str:
    return (
        f"{summary['scenario']}: {summary['instances']} instances, {summary['users']} users, "
        f"{summary['duration_s']} s (affinity {summary['affinity']}, {summary['db']}, "
        f"Redis persistence {summary['redis_persistence']})"
    )


def markdown(summary: dict[str, Any]) -> str:
    lines = [f"# {headline(summary)}", ""]
    lines.append("| " + " | ".join(HEADERS) + " |")
    lines.append("|" + "---|" * len(HEADERS))
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(summary)]
    lines += [
        "",
        "*failed requests*: connection errors and 5xx. *Lost their session*: a user found itself "
        "logged out, or its cart differed from what it had put in, at least once.",
        "",
        "Fault events: "
        + "; ".join(
            f"{e['t']:.0f} s {e['action']} {e['target']}"
            + (f" ({e['signal']})" if e.get("signal") else "")
            for e in _any_events(summary)
        ),
        "",
    ]
    return "\n".join(lines)


def _any_events(summary: dict[str, Any]) -> list[dict[str, Any]]:
    for result in summary["modes"].values():
        if result["events"]:
            return result["events"]
    return []


# ---------------------------------------------------------------------- SVG


def _marker(shape: str, x: float, y: float, colour: str, size: float = 5) -> str:
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{size}" fill="{colour}"/>'
    if shape == "square":
        return f'<rect x="{x - size:.1f}" y="{y - size:.1f}" width="{2 * size}" height="{2 * size}" fill="{colour}"/>'
    if shape == "diamond":
        points = f"{x},{y - size - 1} {x + size + 1},{y} {x},{y + size + 1} {x - size - 1},{y}"
        return f'<polygon points="{points}" fill="{colour}"/>'
    if shape == "triangle":
        points = f"{x},{y - size - 1} {x + size + 1},{y + size} {x - size - 1},{y + size}"
        return f'<polygon points="{points}" fill="{colour}"/>'
    return (
        f'<path d="M{x - size},{y - size} L{x + size},{y + size} M{x - size},{y + size} '
        f'L{x + size},{y - size}" stroke="{colour}" stroke-width="2.5"/>'
    )


def time_chart(
    timeline: list[dict[str, Any]], events: list[dict[str, Any]], duration: float
) -> str:
    """Requests per second (line) and failures per second by class (markers), faults marked."""
    width, height, left, right, top, bottom = 960, 300, 60, 20, 20, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    span = max(duration, max((s["t"] + 1 for s in timeline), default=1))
    peak = max([s["requests"] for s in timeline] + [1])
    fail_peak = max([max(s["failures_by_class"].values(), default=0) for s in timeline] + [1])
    top_value = max(peak, fail_peak)

    def x_of(t: float) -> float:
        return left + plot_w * t / span

    def y_of(v: float) -> float:
        return top + plot_h * (1 - v / top_value)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="requests and failures per second over time">'
    ]
    for fraction in (0, 0.5, 1):
        value = top_value * fraction
        y = y_of(value)
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
        )
        parts.append(f'<text x="{left - 8}" y="{y + 5:.1f}" text-anchor="end">{value:.0f}</text>')
    for t in range(0, int(span) + 1, max(1, int(span) // 8 or 1)):
        parts.append(
            f'<text x="{x_of(t):.1f}" y="{height - bottom + 22}" text-anchor="middle">{t}s</text>'
        )
    for event in events:
        x = x_of(float(event["t"]))
        label = f"{event['action']} {event['target']}" + (
            f" {event['signal']}" if event.get("signal") else ""
        )
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{height - bottom}" class="event"/>'
            f'<text x="{x + 4:.1f}" y="{top + 14}" class="event-label">{html.escape(label)}</text>'
        )
    if timeline:
        points = " ".join(f"{x_of(s['t'] + 0.5):.1f},{y_of(s['requests']):.1f}" for s in timeline)
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{THROUGHPUT_COLOUR}" stroke-width="2.5"/>'
        )
    for second in timeline:
        for name, count in second["failures_by_class"].items():
            if count and name in CLASS_STYLE:
                colour, shape, _ = CLASS_STYLE[name]
                parts.append(_marker(shape, x_of(second["t"] + 0.5), y_of(count), colour))
    parts.append(
        f'<text x="{left}" y="{height - 6}" class="axis-title">seconds since the start · '
        "line: requests/s · markers: failures/s by class</text></svg>"
    )
    return "".join(parts)


def spread_chart(result: dict[str, Any], users: list[dict[str, Any]]) -> str:
    """Users by the instance that served their login; the ones who lost their session hatched."""
    instances = sorted({u.get("first_instance") or "none" for u in users})
    if not instances:
        return "<p>No users.</p>"
    width, row, left = 960, 34, 90
    peak = max(sum(1 for u in users if (u.get("first_instance") or "none") == i) for i in instances)
    scale = (width - left - 120) / max(peak, 1)
    parts = [
        f'<svg class="spread" viewBox="0 0 {width} {row * len(instances) + 10}" role="img" '
        'aria-label="users per instance, hatched: lost their session">'
        '<defs><pattern id="hatch" width="8" height="8" patternUnits="userSpaceOnUse" '
        f'patternTransform="rotate(45)"><rect width="8" height="8" fill="{CLASS_STYLE["logged_out"][0]}"/>'
        '<line x1="0" y1="0" x2="0" y2="8" stroke="#fff" stroke-width="3"/></pattern></defs>'
    ]
    for index, instance in enumerate(instances):
        mine = [u for u in users if (u.get("first_instance") or "none") == instance]
        lost = sum(1 for u in mine if u.get("lost"))
        y = 5 + index * row
        marked = " (faulted)" if instance == result.get("faulted_instance") else ""
        parts.append(f'<text x="{left - 10}" y="{y + 20}" text-anchor="end">{instance}</text>')
        kept_w, lost_w = (len(mine) - lost) * scale, lost * scale
        parts.append(
            f'<rect x="{left}" y="{y}" width="{kept_w:.1f}" height="24" fill="{THROUGHPUT_COLOUR}"/>'
        )
        parts.append(
            f'<rect x="{left + kept_w:.1f}" y="{y}" width="{lost_w:.1f}" height="24" fill="url(#hatch)"/>'
        )
        parts.append(
            f'<text x="{left + kept_w + lost_w + 8:.1f}" y="{y + 18}">{len(mine)} '
            f"user{'s' if len(mine) != 1 else ''}, {lost} lost{marked}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


CSS = """
body { font: 18px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #111;
  max-width: 1100px; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2.5rem; border-bottom: 2px solid #ddd; }
table { border-collapse: collapse; width: 100%; font-size: 0.95rem; }
th, td { border-bottom: 1px solid #ccc; padding: .45rem .5rem; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict-as-expected { font-weight: 700; }
.verdict-unexpected { font-weight: 700; text-decoration: underline wavy; }
svg { width: 100%; height: auto; font-size: 14px; }
svg .grid { stroke: #ddd; } svg .event { stroke: #0072B2; stroke-dasharray: 6 4; stroke-width: 2; }
svg .event-label { fill: #0072B2; font-weight: 700; } svg .axis-title { fill: #444; }
.legend { display: flex; flex-wrap: wrap; gap: 1.2rem; list-style: none; padding: 0; }
.legend svg { width: 18px; height: 18px; vertical-align: middle; }
.note { color: #444; }
"""


def _legend() -> str:
    items = [
        f'<li><svg viewBox="0 0 18 18"><line x1="0" y1="9" x2="18" y2="9" stroke="{THROUGHPUT_COLOUR}" '
        'stroke-width="3"/></svg> requests/s</li>'
    ]
    for colour, shape, label in CLASS_STYLE.values():
        items.append(
            f'<li><svg viewBox="0 0 18 18">{_marker(shape, 9, 9, colour)}</svg> {label}</li>'
        )
    items.append(
        f'<li><svg viewBox="0 0 18 18"><line x1="9" y1="0" x2="9" y2="18" stroke="{EVENT_COLOUR}" '
        'stroke-width="2" stroke-dasharray="4 3"/></svg> fault event</li>'
    )
    return '<ul class="legend">' + "".join(items) + "</ul>"


def html_report(summary: dict[str, Any], out_dir: Path) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
    body = []
    for row in table_rows(summary):
        cells = []
        for index, cell in enumerate(row):
            klass = ' class="num"' if 1 <= index <= 6 else ""
            if index == len(row) - 1:
                klass = f' class="verdict-{cell.replace(" ", "-")}"'
            cells.append(f"<td{klass}>{html.escape(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    sections = []
    for mode, result in summary["modes"].items():
        if result["verdict"] == "not applicable":
            continue
        folder = out_dir / mode
        timeline = read_jsonl(folder / "timeline.jsonl")
        users = read_jsonl(folder / "users.jsonl")
        sections.append(
            f'<section id="{mode}"><h2>{mode} — {html.escape(result["verdict"])}</h2>'
            f"<p>Predicted: {html.escape(result['expected'])}.</p>"
            f"{time_chart(timeline, result['events'], summary['duration_s'])}"
            "<h3>Users by the instance that served their login</h3>"
            f"{spread_chart(result, users)}</section>"
        )
    title = html.escape(headline(summary))
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{title}</title>"
        f"<style>{CSS}</style></head><body>"
        f"<h1>{title}</h1>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        '<p class="note"><em>failed requests</em>: connection errors and 5xx. <em>Lost their session</em>: '
        "found itself logged out, or its cart changed, at least once. Failure classes: "
        + ", ".join(FAILURE_CLASSES)
        + ".</p>"
        + _legend()
        + "".join(sections)
        + "</body></html>"
    )


def write_reports(summary: dict[str, Any], out_dir: Path) -> None:
    (out_dir / "report.md").write_text(markdown(summary), encoding="utf-8")
    (out_dir / "report.html").write_text(html_report(summary, out_dir), encoding="utf-8")
