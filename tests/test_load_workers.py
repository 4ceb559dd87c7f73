"""Merging the files of Locust's workers (``--load-workers``) into the files of one process.

No Locust here: the workers' files are written by hand, as ``loadtests/run_log.py``
writes them, and ``Load`` merges them without starting anything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from loadtests.records import RAW_TIMES, second_line
from loadtests.worker_files import merge_failures, merge_users, read_lines, worker_file
from sessions_lab.cli import main
from sessions_lab.experiments.load import Load

ORIGIN = 1_800_000_000.0


def worker_second(t: int, times: list[float], **failures: int) -> dict[str, Any]:
    line = second_line(t, ORIGIN, len(times), Counter(failures), sorted(times))
    return {**line, RAW_TIMES: sorted(times)}


def write(path: Path, lines: list[dict[str, Any]], tail: str = "") -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + tail)


def test_a_worker_writes_beside_the_master_s_path_with_its_number() -> None:
    assert worker_file(Path("out/redis/users.jsonl"), 0) == Path("out/redis/users.worker1.jsonl")
    assert worker_file(Path("timeline.jsonl"), 1) == Path("timeline.worker2.jsonl")


def test_a_line_still_being_written_is_left_for_later(tmp_path: Path) -> None:
    path = tmp_path / "timeline.worker1.jsonl"
    write(path, [worker_second(0, [1.0])], tail='{"t": 1, "at"')
    assert [line["t"] for line in read_lines(path)] == [0]
    assert read_lines(tmp_path / "missing.jsonl") == []


def test_live_merging_waits_for_every_worker_and_the_end_takes_what_is_left(
    tmp_path: Path,
) -> None:
    timeline = tmp_path / "timeline.jsonl"
    one, two = worker_file(timeline, 0), worker_file(timeline, 1)
    write(one, [worker_second(0, [1.0, 2.0, 30.0], connection=1), worker_second(1, [5.0])])
    write(two, [worker_second(0, [3.0, 4.0, 40.0, 50.0], logged_out=2)])
    load = Load(tmp_path, workers=2)

    load.follow()
    merged = read_lines(timeline)
    # Second 1 waits: worker 2 has not written it yet.
    assert [line["t"] for line in merged] == [0]
    first = merged[0]
    assert first["requests"] == 7
    assert first["failures_by_class"]["connection"] == 1
    assert first["failures_by_class"]["logged_out"] == 2
    # Exact percentiles of all seven times, not an average of the workers' own.
    assert (first["p50_ms"], first["p95_ms"]) == (4.0, 50.0)
    assert first["at"] == ORIGIN and RAW_TIMES not in first

    load.follow()  # nothing new: nothing written twice
    assert len(read_lines(timeline)) == 1

    load._merge_seconds(final=True)
    assert [line["t"] for line in read_lines(timeline)] == [0, 1]
    assert read_lines(timeline)[1]["requests"] == 1


def test_users_and_failures_are_merged_in_order(tmp_path: Path) -> None:
    users = tmp_path / "users.jsonl"
    write(worker_file(users, 0), [{"user": "user1", "number": 1}, {"user": "user3", "number": 3}])
    write(worker_file(users, 1), [{"user": "user2", "number": 2}])
    merged = merge_users([worker_file(users, 0), worker_file(users, 1)])
    assert [user["user"] for user in merged] == ["user1", "user2", "user3"]

    failures = tmp_path / "failures.jsonl"
    write(worker_file(failures, 0), [{"done": ORIGIN + 2}, {"done": ORIGIN + 9}])
    write(worker_file(failures, 1), [{"done": ORIGIN + 5}])
    merged = merge_failures([worker_file(failures, 0), worker_file(failures, 1)])
    assert [failure["done"] - ORIGIN for failure in merged] == [2, 5, 9]


@pytest.mark.parametrize("workers", ["0", "9"])
def test_too_few_or_too_many_load_workers_is_a_clear_cli_error(
    workers: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["experiment", "--modes", "redis", "--load-workers", workers])
    assert code != 0
    assert "--load-workers must be 1..8" in capsys.readouterr().err


def test_an_interrupted_run_stops_every_process_and_still_merges_what_the_workers_wrote(
    tmp_path: Path,
) -> None:
    load = Load(tmp_path, workers=2)
    for _ in range(3):  # a master and two workers that would run for a minute
        load.processes.append(
            subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
            )
        )
    users = tmp_path / "users.jsonl"
    write(worker_file(users, 0), [{"user": "user1", "number": 1}])
    write(worker_file(users, 1), [{"user": "user2", "number": 2}])
    write(worker_file(tmp_path / "timeline.jsonl", 0), [worker_second(0, [1.0])])

    load.stop()

    assert all(process.poll() is not None for process in load.processes)  # none left running
    assert [user["user"] for user in read_lines(users)] == ["user1", "user2"]
    assert [line["requests"] for line in read_lines(tmp_path / "timeline.jsonl")] == [1]
    assert read_lines(tmp_path / "failures.jsonl") == []
    assert not list(tmp_path.glob("*.worker*.jsonl"))
