"""The files a run leaves for the lab, and the exit code that says a run was void.

Hooks Locust's events: at test start the clock and the user numbering are
reset (the web UI can run several tests in one process); every request
goes into the timeline; at test stop the users file is written; at quit
Locust's totals are written (``--totals-out``: final, where its stats CSV
is up to a second behind), and a run in which no request got any HTTP
answer exits with ``VOID_RUN_EXIT_CODE`` instead of passing. Locust
already exits 1 when any request failed, and a fault scenario is expected
to fail some, so the lab needs this third state.

In a distributed run (``--master`` and ``--worker``, the lab's
``--load-workers``) the master runs no user and writes none of these: each
worker starts its clock at the master's, numbers its users apart from the
others' (``loadtests/distributed.py``) and writes its own files
(``loadtests/worker_files.py``), which the lab merges; the master exits
with ``VOID_RUN_EXIT_CODE`` if no worker got an answer (same module).
``--processes`` is
not supported: its processes would share no clock.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, TextIO

import gevent
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtests.records import (
    VOID_RUN_EXIT_CODE,
    Timeline,
    UserRecord,
    write_jsonl,
    write_totals,
    write_users,
)
from loadtests.session_checks import Failure
from loadtests.worker_files import worker_file

FAILURE_NAMES = frozenset(failure.value for failure in Failure)

logger = logging.getLogger(__name__)


class RunLog:
    """The memory of the current test: its start, its users, its timeline."""

    def __init__(self) -> None:
        self._timeline_file: TextIO | None = None
        self._flusher: gevent.Greenlet | None = None
        # This process's place in a distributed run: worker ``index`` of ``workers``.
        self.workers, self.index = 1, 0
        self.master_clock: dict[str, float] | None = None
        self.environment: Environment | None = None  # Locust's, from its init
        self._reset()

    def _reset(self) -> None:
        self.started_at = time.time()
        self.started = False
        self.answered = 0  # requests that got any HTTP status back
        self.records: list[UserRecord] = []
        self.failures: list[dict[str, Any]] = []  # one per failed request, in order
        self.timeline = Timeline(self.started_at)
        self._numbers: dict[str, int] = {}

    def number(self, kind: str) -> int:
        """The next number for a user of ``kind``, from 1: usernames and client addresses.

        Worker ``index`` of ``workers`` takes every ``workers``-th number from
        ``index + 1``: no two workers name a user alike.
        """
        self._numbers[kind] = self._numbers.get(kind, 0) + 1
        return (self._numbers[kind] - 1) * self.workers + self.index + 1

    def seconds(self) -> float:
        return time.time() - self.started_at

    def seconds_at(self, at: float) -> float:
        return at - self.started_at

    def failed_request(self, failure: dict[str, Any]) -> None:
        """Keep one failed request for the failures file (``loadtests/shop_user.failed_request``)."""
        self.failures.append(failure)

    def add_user(self, record: UserRecord) -> UserRecord:
        self.records.append(record)
        return record

    def start(self, environment: Environment) -> None:
        self.stop_timeline()
        self._reset()
        runner = environment.runner
        if isinstance(runner, MasterRunner):
            return  # its workers run the users (loadtests/distributed.py)
        self.started = True
        if isinstance(runner, WorkerRunner):
            self.index = max(0, runner.worker_index)
            if self.master_clock is None:
                logger.error("no clock from the master: this worker joined a running test")
            else:
                self.started_at = self.master_clock["started_at"]
                self.workers = max(int(self.master_clock["workers"]), self.index + 1)
                self.timeline = Timeline(self.started_at)
            self.timeline.raw = True
        timeline_out = self.path(environment, "timeline_out")
        if timeline_out:
            timeline_out.parent.mkdir(parents=True, exist_ok=True)
            self._timeline_file = timeline_out.open("w", encoding="utf-8")
            self.timeline.out = self._timeline_file
            self._flusher = gevent.spawn(self._flush_every_second)

    def _flush_every_second(self) -> None:
        while True:
            gevent.sleep(1.0)
            self.timeline.flush(time.time())

    def stop_timeline(self) -> None:
        if self._flusher is not None:
            self._flusher.kill(block=False)
            self._flusher = None
        if self._timeline_file is not None:
            self.timeline.flush(time.time(), final=True)
            self._timeline_file.close()
            self._timeline_file = None

    def stop(self, environment: Environment) -> None:
        self.stop_timeline()
        if not self.started:
            return  # a master: its workers write the files
        users_out = self.path(environment, "users_out")
        if users_out:
            write_users(users_out, self.records)
        failures_out = self.path(environment, "failures_out")
        if failures_out:
            write_jsonl(failures_out, self.failures)

    def path(self, environment: Environment, option: str) -> Path | None:
        """Where this process writes the file ``--OPTION`` names: a worker, beside it."""
        value = _option(environment, option)
        if not value:
            return None
        if isinstance(environment.runner, WorkerRunner):
            return worker_file(Path(value), self.index)
        return Path(value)


RUN = RunLog()


def _option(environment: Environment, name: str) -> Any:
    return getattr(environment.parsed_options, name, None) if environment.parsed_options else None


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_kwargs: Any) -> None:
    RUN.start(environment)


@events.request.add_listener
def _on_request(
    response_time: float, exception: BaseException | None, response: Any = None, **_kwargs: Any
) -> None:
    if getattr(response, "status_code", 0):
        RUN.answered += 1
    failure = None
    if exception is not None:
        # Every request of these users is judged, so the message is a class name;
        # anything else is reported as unexpected rather than invented a class.
        message = str(exception)
        failure = message if message in FAILURE_NAMES else Failure.UNEXPECTED.value
    RUN.timeline.add(time.time(), failure, response_time or 0.0)


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_kwargs: Any) -> None:
    RUN.stop(environment)


@events.init.add_listener
def _on_init(environment: Environment, **_kwargs: Any) -> None:
    RUN.environment = environment


@events.quit.add_listener
def _on_quit(**_kwargs: Any) -> None:
    # After the runner's quit (``quitting`` comes before it on SIGTERM, with users still running).
    environment = RUN.environment
    if environment is None or isinstance(environment.runner, WorkerRunner):
        return  # a worker's statistics are its master's
    totals_out = _option(environment, "totals_out")
    if totals_out:
        write_totals(Path(totals_out), environment.stats.total)


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_kwargs: Any) -> None:
    if RUN.started and RUN.answered == 0:
        logger.error(
            "No request got an HTTP answer (is the shop at %s up?): exiting with %d.",
            environment.host,
            VOID_RUN_EXIT_CODE,
        )
        environment.process_exit_code = VOID_RUN_EXIT_CODE
