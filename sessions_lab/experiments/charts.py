"""The report's charts as numbers: where each line, bar, marker and label goes.

``report.py`` hands these records to ``templates/charts.svg.j2``, which draws
them; keeping the geometry here leaves the template pure SVG and lets the
numbers be tested without parsing markup. Colours are the Okabe-Ito
palette, and every failure class has its own marker shape, so the charts read
in greyscale and to colour-blind readers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sessions_lab.experiments.results import node_before_loss

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


# The charts' numbers, computed here; charts.svg.j2 draws them. Coordinates
# stay floats (the template prints most with one decimal, as ``|f1``); the
# point lists of polylines and polygons are built here as strings, because
# their number formats differ (raw floats in markers, one decimal in lines).


@dataclass(frozen=True)
class Marker:
    """A failure-class marker placed on a chart; which fields count depends on the shape."""

    shape: str  # circle | square | diamond | triangle | cross
    colour: str
    x: float = 0  # circle: centre; square: top-left corner
    y: float = 0
    size: float = 0  # circle: radius; square: side
    points: str = ""  # diamond, triangle: polygon points; cross: path data


def marker(shape: str, x: float, y: float, colour: str, size: float = 5) -> Marker:
    if shape == "circle":
        return Marker(shape, colour, x, y, size)
    if shape == "square":
        return Marker(shape, colour, x - size, y - size, 2 * size)
    if shape == "diamond":
        points = f"{x},{y - size - 1} {x + size + 1},{y} {x},{y + size + 1} {x - size - 1},{y}"
        return Marker(shape, colour, points=points)
    if shape == "triangle":
        points = f"{x},{y - size - 1} {x + size + 1},{y + size} {x - size - 1},{y + size}"
        return Marker(shape, colour, points=points)
    path = (
        f"M{x - size},{y - size} L{x + size},{y + size} "
        f"M{x - size},{y + size} L{x + size},{y - size}"
    )
    return Marker("cross", colour, points=path)


@dataclass(frozen=True)
class GridLine:
    y: float
    label: str  # the value at this height, requests or failures per second

    @property
    def label_y(self) -> float:
        return self.y + 5


@dataclass(frozen=True)
class Tick:
    x: float
    seconds: int


@dataclass(frozen=True)
class EventMark:
    x: float
    label: str  # "kill app2 KILL"

    @property
    def label_x(self) -> float:
        return self.x + 4


@dataclass(frozen=True)
class TimeChart:
    """Requests per second (a line) and failures per second by class (markers), faults marked."""

    grid: list[GridLine]
    ticks: list[Tick]
    events: list[EventMark]
    throughput: str  # polyline points; empty without a timeline
    markers: list[Marker]
    width: int
    height: int
    left: int  # margins around the plot
    right: int
    top: int
    bottom: int

    @property
    def plot_right(self) -> int:
        return self.width - self.right

    @property
    def plot_bottom(self) -> int:
        return self.height - self.bottom

    @property
    def value_label_x(self) -> int:
        return self.left - 8

    @property
    def tick_label_y(self) -> int:
        return self.plot_bottom + 22

    @property
    def event_label_y(self) -> int:
        return self.top + 14

    @property
    def title_y(self) -> int:
        return self.height - 6


def time_chart(
    timeline: list[dict[str, Any]], events: list[dict[str, Any]], duration: float
) -> TimeChart:
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

    grid = [
        GridLine(y_of(top_value * fraction), f"{top_value * fraction:.0f}")
        for fraction in (0, 0.5, 1)
    ]
    step = max(1, int(span) // 8 or 1)
    ticks = [Tick(x_of(t), t) for t in range(0, int(span) + 1, step)]
    marks = [
        EventMark(
            x_of(float(event["t"])),
            f"{event['action']} {event['target']}"
            + (f" {event['signal']}" if event.get("signal") else ""),
        )
        for event in events
    ]
    throughput = " ".join(f"{x_of(s['t'] + 0.5):.1f},{y_of(s['requests']):.1f}" for s in timeline)
    markers = [
        marker(CLASS_STYLE[name][1], x_of(second["t"] + 0.5), y_of(count), CLASS_STYLE[name][0])
        for second in timeline
        for name, count in second["failures_by_class"].items()
        if count and name in CLASS_STYLE
    ]
    return TimeChart(
        grid, ticks, marks, throughput, markers, width, height, left, right, top, bottom
    )


@dataclass(frozen=True)
class Bar:
    """One instance's users: kept their session (solid), lost it (hatched)."""

    instance: str
    y: int
    users: int
    lost: int
    kept_width: float
    lost_width: float
    faulted: bool  # the instance the scenario broke
    left: int  # where the bars start; the instance names end left of it

    @property
    def name_x(self) -> int:
        return self.left - 10

    @property
    def name_y(self) -> int:
        return self.y + 20

    @property
    def lost_x(self) -> float:
        return self.left + self.kept_width

    @property
    def label_x(self) -> float:
        return self.left + self.kept_width + self.lost_width + 8

    @property
    def label_y(self) -> int:
        return self.y + 18


@dataclass(frozen=True)
class SpreadChart:
    """Users by the instance that served their login (or by the cache node holding their
    session); no bars: no users."""

    bars: list[Bar]
    width: int
    row: int  # the height of one bar and the gap below it
    label: str = "users per instance, hatched: lost their session"

    @property
    def height(self) -> int:
        return self.row * len(self.bars) + 10


def spread_chart(result: dict[str, Any], users: list[dict[str, Any]]) -> SpreadChart:
    """Users by the instance that served their login."""
    return _spread(
        users, lambda user: user.get("first_instance") or "none", result.get("faulted_instance")
    )


def node_spread_chart(result: dict[str, Any], users: list[dict[str, Any]]) -> SpreadChart | None:
    """Users by the cache node their session was on before the fault; None without nodes."""
    if not result.get("users_by_node"):
        return None
    on_nodes = [user for user in users if user.get("nodes") or user.get("loss_nodes")]
    chart = _spread(on_nodes, node_before_loss, result.get("faulted_node"), left=110)
    return replace(chart, label="users per cache node, hatched: lost their session")


def _spread(
    users: list[dict[str, Any]],
    place: Callable[[dict[str, Any]], str],
    faulted: str | None,
    left: int = 90,  # where the bars start: room for the names
) -> SpreadChart:
    width, row = 960, 34
    places = sorted({place(u) for u in users})
    if not places:
        return SpreadChart([], width, row)
    peak = max(sum(1 for u in users if place(u) == p) for p in places)
    scale = (width - left - 120) / max(peak, 1)
    bars = []
    for index, name in enumerate(places):
        mine = [u for u in users if place(u) == name]
        lost = sum(1 for u in mine if u.get("lost"))
        bars.append(
            Bar(
                name,
                y=5 + index * row,
                users=len(mine),
                lost=lost,
                kept_width=(len(mine) - lost) * scale,
                lost_width=lost * scale,
                faulted=name == faulted,
                left=left,
            )
        )
    return SpreadChart(bars, width, row)
