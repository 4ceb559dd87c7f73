"""Why each request failed: the shoppers' failures, lined up with the faults and the servers' logs.

A shopper records each failed request (``failures.jsonl``: when it was sent
and answered, the request, the status or the client's error, nginx's
request id). This module gives each one

- the **instance** nginx chose: the access-log line with the same request id
  lists the upstream addresses nginx tried; the addresses are named by the
  run's own answers (an answer's ``X-Served-By`` names its address);
- its **phase**: during a fault (from a breaking event to a few seconds
  after the target is back), or before or after every fault;
- its **cause**, read from the logs: nginx's error-log line for that request
  and upstream (``connect() failed``, ``upstream timed out``…), the
  instance's own error (Django's ``Internal Server Error`` and the exception
  that ended it), or, with no server trace, what the client saw.

A failure outside every fault window — or an answer no shopper expects (a
404, a 429), whenever it comes — is **unexplained**: the verdict of the
mode becomes "unexpected", with that failure as the reason. Identical
failures (same request, answer, instance, phase and cause) are grouped.
"""

from __future__ import annotations

import calendar
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sessions_lab.experiments.server_logs import NGINX_ERROR_LOG, upstreams

# After a target is back (started, resumed), failures of this long are still
# its: nginx takes a failed instance back after fail_timeout, a store's
# clients reconnect, a restarted instance warms up.
GRACE_S = 6.0
# A request sent this long before a fault can be caught by it (in flight).
IN_FLIGHT_S = 1.0
# Log lines carry whole seconds (nginx) or milliseconds in local time: a log
# line this close to the failure's answer is taken as its trace.
LOG_SLACK_S = 2.0
BREAKING = ("kill", "drain", "add")
RECOVERING = ("start",)

_IDS = re.compile(r"/\d+(?=/)")
_NGINX_ERROR = re.compile(
    r"(?P<time>\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(?:error|warn|crit)\] [^*]*\*\d+ "
    r"(?P<message>.*?), client: .*?request: \"(?P<request>[^\"]*)\""
    r"(?:, upstream: \"(?:https?://)?(?P<upstream>[^/\"]*)[^\"]*\")?"
)
_APP_LINE = re.compile(r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ (?P<level>[A-Z]+) ")
_APP_ERROR = re.compile(r"ERROR django\.request [^:]*: (?P<path>\S+)")


@dataclass(frozen=True)
class Window:
    """A fault, from its event to a few seconds after its target is back (load clock, s)."""

    start: float
    end: float
    label: str  # "kill app2 (KILL) at 12.0 s"


def fault_windows(events: Sequence[Mapping[str, Any]], duration: float) -> list[Window]:
    """One window per breaking event, closed by the next ``start`` of the same target."""
    windows = []
    for index, event in enumerate(events):
        if event.get("action") not in BREAKING:
            continue
        target = event.get("target")
        back = next(
            (
                float(later["t"])
                for later in events[index + 1 :]
                if later.get("action") in RECOVERING and later.get("target") == target
            ),
            None,
        )
        if event.get("action") == "add":
            back = float(event["t"])  # a new instance: its own start is the event
        # Never undone: until the load ended (or for good, when that is unknown).
        end = (back if back is not None else (duration or math.inf)) + GRACE_S
        signal = f" ({event['signal']})" if event.get("signal") else ""
        label = f"{event['action']} {target}{signal} at {float(event['t']):.1f} s"
        windows.append(Window(float(event["t"]) - IN_FLIGHT_S, end, label))
    return windows


def instance_names(access: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Upstream address → instance name, learnt from the answers that named their instance."""
    names: dict[str, str] = {}
    for record in access:
        served_by = record.get("served_by")
        tried = upstreams(record)
        if served_by and tried:
            names.setdefault(tried[-1], str(served_by))
    return names


def _unix_time(text: str, pattern: str, utc_offset: float = 0.0) -> float | None:
    """A log line's wall-clock time as Unix time, given the clock's offset from UTC."""
    try:
        return calendar.timegm(time.strptime(text, pattern)) - utc_offset
    except ValueError:
        return None


def nginx_utc_offset(access: Sequence[Mapping[str, Any]]) -> float:
    """nginx writes its error log in its own local time; its access log's ``time``
    (ISO 8601, offset included) says which (UTC in a container, the host's natively)."""
    for record in access[:1]:
        try:
            offset = datetime.fromisoformat(str(record.get("time"))).utcoffset()
        except ValueError:
            break
        return offset.total_seconds() if offset is not None else 0.0
    return 0.0


def nginx_errors(logs: Path, utc_offset: float = 0.0) -> list[dict[str, Any]]:
    """nginx's error-log lines about a request: {at, message, request, upstream}."""
    path = logs / NGINX_ERROR_LOG
    if not path.is_file():
        return []
    found = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _NGINX_ERROR.search(line)
        if match is None:
            continue
        at = _unix_time(match["time"], "%Y/%m/%d %H:%M:%S", utc_offset)
        if at is not None:
            found.append({**match.groupdict(), "at": at})
    return found


def app_errors(logs: Path) -> list[dict[str, Any]]:
    """Each instance's request errors: {instance, at, path, message (the exception's last line)}.

    Django sets its processes' clock to ``TIME_ZONE`` (UTC), so these times are UTC.
    """
    found: list[dict[str, Any]] = []
    for path in sorted(logs.glob("app*.log")):
        current: dict[str, Any] | None = None
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            stamped = _APP_LINE.match(line)
            if stamped:
                current = None
                error = _APP_ERROR.search(line)
                at = _unix_time(stamped["time"], "%Y-%m-%d %H:%M:%S")
                if error and at is not None:
                    current = {"instance": path.stem, "at": at, "path": error["path"]}
                    current["message"] = line[stamped.end() :].strip()
                    found.append(current)
            elif current is not None and re.match(r"^[\w.]+(Error|Exception)\b", line.strip()):
                current["message"] = line.strip()  # the traceback's last exception wins
    return found


def _cause(
    failure: Mapping[str, Any],
    access: Mapping[str, Any],
    names: Mapping[str, str],
    nginx: Sequence[Mapping[str, Any]],
    apps: Sequence[Mapping[str, Any]],
) -> str:
    method, _, path = str(failure.get("request", "")).partition(" ")
    answered = float(failure.get("done", failure.get("at", 0)))
    request_line = f"{method} {path} "
    tried = upstreams(access)
    near = [
        line
        for line in nginx
        if str(line.get("request", "")).startswith(request_line)
        and abs(float(line["at"]) - answered) <= LOG_SLACK_S
        and (not tried or line.get("upstream") in tried or not line.get("upstream"))
    ]
    if near:
        line = min(near, key=lambda item: abs(float(item["at"]) - answered))
        where = names.get(str(line.get("upstream")), line.get("upstream") or "")
        return f"nginx: {line['message']}" + (f" ({where})" if where else "")
    served_by = failure.get("served_by")
    if served_by:
        errors = [
            error
            for error in apps
            if error["instance"] == served_by
            and error["path"] == path
            and abs(float(error["at"]) - answered) <= LOG_SLACK_S
        ]
        if errors:
            error = min(errors, key=lambda item: abs(float(item["at"]) - answered))
            return f"{served_by}: {error['message']}"
        return f"{served_by} answered {failure.get('status')} (nothing in its log)"
    if failure.get("truncated"):
        return "the answer was cut off after its status line: the instance died mid-answer"
    if not failure.get("status"):
        return f"no answer: {failure.get('error') or 'the connection failed'}"
    return f"nginx answered {failure.get('status')} (no line in its error log)"


def _answer(failure: Mapping[str, Any]) -> str:
    if failure.get("truncated"):
        return f"{failure.get('status')}, cut off"
    if failure.get("status"):
        return str(failure["status"])
    error = str(failure.get("error") or "")
    return f"no answer ({error.split(':', 1)[0]})" if error else "no answer"


def explain(
    failures: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    access: Sequence[Mapping[str, Any]],
    logs: Path,
    origin: float,
    duration: float,
) -> list[dict[str, Any]]:
    """The failed requests of a mode's run, grouped, each with where, when and why.

    ``events`` are on the load's clock (``origin``: its 0 s as a Unix time).
    """
    windows = fault_windows(events, duration)
    by_id = {str(r.get("request_id")): r for r in access if r.get("request_id")}
    names = instance_names(access)
    nginx = nginx_errors(logs, nginx_utc_offset(access)) if failures else []
    apps = app_errors(logs) if failures else []
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for failure in failures:
        sent = float(failure.get("at", origin)) - origin
        answered = float(failure.get("done", failure.get("at", origin))) - origin
        window = next((w for w in windows if sent <= w.end and answered >= w.start), None)
        if window is not None:
            phase = f"during {window.label}"
        elif windows and answered < windows[0].start:
            phase = "before any fault"
        else:
            phase = "after the faults" if windows else "no fault in this scenario"
        record = by_id.get(str(failure.get("request_id")), {})
        tried = upstreams(record)
        instance = ", ".join(names.get(address, address) for address in tried) or (
            failure.get("served_by") or "—"
        )
        method, _, path = str(failure.get("request", "")).partition(" ")
        request = f"{method} {_IDS.sub('/[id]', path)}"
        cause = _cause(failure, record, names, nginx, apps)
        key = (request, _answer(failure), instance, phase, cause, failure.get("failure"))
        group = groups.get(key)
        if group is None:
            group = groups[key] = {
                "first_t": round(sent, 1),
                "last_t": round(sent, 1),
                "count": 0,
                "request": request,
                "answer": _answer(failure),
                "instance": instance,
                "phase": phase,
                "cause": cause,
                # A fault explains a request left without an answer, never an
                # answer no shopper expects (a 404, a 429: a bug).
                "explained": window is not None and failure.get("failure") != "unexpected",
            }
        group["count"] += 1
        group["last_t"] = round(sent, 1)
    return sorted(groups.values(), key=lambda group: group["first_t"])


def unexplained(groups: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [group for group in groups if not group["explained"]]


def describe(group: Mapping[str, Any]) -> str:
    """One line for the terminal and a verdict's reason."""
    times = (
        f"{group['first_t']:.1f} s"
        if group["count"] == 1
        else f"{group['count']}× from {group['first_t']:.1f} to {group['last_t']:.1f} s"
    )
    return (
        f"{group['request']} → {group['answer']} at {times} via {group['instance']}, "
        f"{group['phase']}: {group['cause']}"
    )
