"""Drive wrk (one fast HTTP load generator for every figure of a run) and read its answer.

wrk is a C program on an event loop: on 2 cores it leaves most of the
machine to nginx and the instances, where Locust's Python would compete
for it. A short Lua script sets the method, body and headers per page.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

LATENCY_LINE = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


class WrkMissingError(RuntimeError):
    """wrk is not installed; the message says how to get it."""


@dataclass(frozen=True)
class Figure:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx/3xx answers and socket errors


def combine(rounds: list[Figure]) -> Figure:
    """One figure for rounds of equal length: mean rate, median p50, the worst round's p99."""
    return Figure(
        rps=round(statistics.fmean(r.rps for r in rounds), 1),
        p50_ms=round(statistics.median(r.p50_ms for r in rounds), 2),
        p99_ms=max(r.p99_ms for r in rounds),
        requests=sum(r.requests for r in rounds),
        errors=sum(r.errors for r in rounds),
    )


# wrk's threads, each running its own copy of the Lua script (``lua_script``).
THREADS = 2


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkMissingError("wrk is not installed: `sudo apt-get install wrk` (Debian/Ubuntu)")
    return found


def lua_script(method: str, headers: list[dict[str, str]], bodies: list[str] | None) -> str:
    """Each request takes the next header set in turn (one per simulated user), and the next body.

    One user alone would be pinned to one instance in ``sticky`` mode and
    measure one process, not the cluster. Bodies in turn make every write
    change what it writes (a write of what is already there saves nothing):
    each of wrk's threads runs its own copy of the script, so each takes its
    own share of the bodies (``setup`` numbers the threads), and two threads
    writing one user's cart never send it the same body.
    """
    sets = ", ".join(
        "{" + ", ".join(f"[{_lua(k)}] = {_lua(v)}" for k, v in h.items()) + "}" for h in headers
    )
    return (
        f"local sets = {{{sets}}}\n"
        f"local bodies = {{{', '.join(_lua(body) for body in bodies or [])}}}\n"
        "local threads = 0\n"
        "function setup(thread)\n"
        '  thread:set("id", threads)\n'
        "  threads = threads + 1\n"
        "end\n"
        "local n, m, mine = 0, 0, nil\n"
        "request = function()\n"
        "  if mine == nil then\n"
        "    mine = {}\n"
        f"    for i = 1 + (id or 0), #bodies, {THREADS} do mine[#mine + 1] = bodies[i] end\n"
        "  end\n"
        "  n = n % #sets + 1\n"
        "  local body = nil\n"
        "  if #mine > 0 then m = m % #mine + 1; body = mine[m] end\n"
        f"  return wrk.format({_lua(method)}, nil, sets[n], body)\n"
        "end\n"
    )


def _lua(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse(output: str) -> Figure:
    latencies = {p: float(v) * UNIT_MS[u] for p, v, u in LATENCY_LINE.findall(output)}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return Figure(
        rps=round(float(rps.group(1)), 1) if rps else 0.0,
        p50_ms=round(latencies.get("50", 0.0), 2),
        p99_ms=round(latencies.get("99", 0.0), 2),
        requests=int(total.group(1)) if total else 0,
        errors=errors,
    )


def measure(
    url: str,
    *,
    duration: int,
    connections: int,
    method: str = "GET",
    headers: list[dict[str, str]] | None = None,
    bodies: list[str] | None = None,
) -> Figure:
    """``connections`` keep-alive connections on 2 threads for ``duration`` seconds."""
    with tempfile.TemporaryDirectory(prefix="sessions-lab-wrk-") as folder:
        script = Path(folder) / "request.lua"
        script.write_text(lua_script(method, headers or [{}], bodies))
        done = subprocess.run(  # noqa: S603 - wrk, found on PATH, with arguments we built
            [wrk_path(), f"-t{THREADS}", f"-c{connections}", f"-d{duration}s", "--latency",
             "--timeout", "5s", "-s", str(script), url],
            capture_output=True, text=True, timeout=duration + 30, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    return parse(done.stdout)
