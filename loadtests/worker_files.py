"""The files of a distributed run (``--load-workers N``): one set per worker, merged by the lab.

Locust's master aggregates its own statistics (the ``--csv`` files) but
runs no user, so the lab's files come from the workers: each writes its
users, failures and timeline beside the path the master was given, with
its number in the name (``users.jsonl`` → ``users.worker1.jsonl``), and the
lab merges them into the files one process writes. The workers share the
master's clock (``run_log``), so their seconds line up exactly; a worker's
timeline line also carries its response times (``records.RAW_TIMES``), so
the merged percentiles are exact, not averaged. Plain Python, like
``records``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from loadtests.records import RAW_TIMES, second_line


def worker_file(path: Path, index: int) -> Path:
    """Where worker ``index`` (from 0) writes the file the master was told to write at ``path``."""
    return path.with_name(f"{path.stem}.worker{index + 1}{path.suffix}")


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The complete JSON lines of ``path`` (a line still being written is left for later)."""
    return read_new_lines(path, 0)[0]


def read_new_lines(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The complete JSON lines of ``path`` after byte ``offset``, and where they end."""
    try:
        with path.open("rb") as file:
            file.seek(offset)
            data = file.read()
    except OSError:
        return [], offset
    complete = data[: data.rfind(b"\n") + 1]
    lines = [json.loads(line) for line in complete.decode("utf-8").splitlines() if line.strip()]
    return lines, offset + len(complete)


def merge_second(lines: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One second of the timeline from each worker's line for it (same ``t``, same clock)."""
    lines = list(lines)
    first = lines[0]
    failures: Counter[str] = Counter()
    times: list[float] = []
    for line in lines:
        failures.update(line["failures_by_class"])
        failures["unexpected"] += line["unexpected"]
        times.extend(line.get(RAW_TIMES, ()))
    return second_line(
        first["t"],
        float(first["at"]) - float(first["t"]),
        sum(line["requests"] for line in lines),
        failures,
        sorted(times),
    )


def merge_users(files: Iterable[Path]) -> list[dict[str, Any]]:
    """Every worker's users, in the order of their numbers (unique across workers)."""
    users = [user for path in files for user in read_lines(path)]
    return sorted(users, key=lambda user: int(user["number"]))


def merge_failures(files: Iterable[Path]) -> list[dict[str, Any]]:
    """Every worker's failed requests, in the order they were answered."""
    failures = [failure for path in files for failure in read_lines(path)]
    return sorted(failures, key=lambda failure: float(failure["done"]))
