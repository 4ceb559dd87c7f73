"""Locust's distributed mode as the lab runs it (``--load-workers N``): one clock, every request counted.

Two handshakes on top of Locust's own messages:

- At test start the master sends every worker its clock and how many worker
  indexes it has handed out (``CLOCK``), before the users: the workers'
  seconds line up, and each numbers its users apart (``RunLog.number``).
- When the test stops, the master first asks the workers to stop (``STOP``)
  and waits until each has stopped its users, written its files and sent its
  last statistics (``STOPPED``, with how many requests got an answer).
  Locust's own quit waits half a second for those statistics, while a
  worker's users may take ``--stop-timeout`` seconds to stop: without this
  the master's figures could miss the last seconds of load. The answers let
  the master exit with ``VOID_RUN_EXIT_CODE`` as one process would.

A worker that joins a test already running gets no clock: it says so in its
log, and its users may share numbers with another worker's.
"""

from __future__ import annotations

import logging
from typing import Any

from gevent.event import Event
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtests.records import VOID_RUN_EXIT_CODE
from loadtests.run_log import RUN

CLOCK = "lab_clock"
STOP = "lab_stop"
STOPPED = "lab_stopped"
# How long the master waits for its workers beyond their --stop-timeout.
STOP_GRACE_S = 10.0

logger = logging.getLogger(__name__)


class Workers:
    """The master's side: which workers have stopped, and what they answered."""

    def __init__(self) -> None:
        self.expected = 0
        self.stopped: set[int] = set()
        self.answered: int | None = None  # None: no worker has reported
        self.all_stopped = Event()

    def wait_for(self, count: int, timeout: float) -> bool:
        self.expected, self.stopped, self.answered = count, set(), None
        self.all_stopped.clear()
        return self.all_stopped.wait(timeout)

    def heard(self, index: int, answered: int) -> None:
        self.stopped.add(index)
        self.answered = (self.answered or 0) + answered
        if len(self.stopped) >= self.expected:
            self.all_stopped.set()


WORKERS = Workers()


@events.init.add_listener
def _on_init(environment: Environment, **_kwargs: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message(CLOCK, _on_clock)
        runner.register_message(STOP, _on_stop)
    elif isinstance(runner, MasterRunner):
        runner.register_message(STOPPED, _on_stopped)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_kwargs: Any) -> None:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        # Sent before the spawn messages, on the same sockets: it arrives first.
        clock = {"started_at": RUN.started_at, "workers": runner.worker_index_max}
        runner.send_message(CLOCK, clock)


def _on_clock(environment: Environment, msg: Any, **_kwargs: Any) -> None:
    RUN.master_clock = dict(msg.data)


@events.test_stopping.add_listener
def _on_test_stopping(environment: Environment, **_kwargs: Any) -> None:
    runner = environment.runner
    if not isinstance(runner, MasterRunner) or not runner.worker_count:
        return
    count = runner.worker_count
    runner.send_message(STOP)
    timeout = float(environment.stop_timeout or 0) + STOP_GRACE_S
    if not WORKERS.wait_for(count, timeout):
        logger.error(
            "%d of %d workers stopped within %.0f s: the last seconds of the others may be missing",
            len(WORKERS.stopped),
            count,
            timeout,
        )


def _on_stop(environment: Environment, msg: Any, **_kwargs: Any) -> None:
    runner = environment.runner
    runner.stop()  # the users stop; test_stop writes this worker's files
    runner._send_stats()  # Locust's last report (private), before we say we stopped
    runner.send_message(STOPPED, {"index": runner.worker_index, "answered": RUN.answered})


def _on_stopped(environment: Environment, msg: Any, **_kwargs: Any) -> None:
    WORKERS.heard(int(msg.data["index"]), int(msg.data["answered"]))


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_kwargs: Any) -> None:
    if isinstance(environment.runner, MasterRunner) and WORKERS.answered == 0:
        logger.error(
            "No worker's request got an HTTP answer (is the shop at %s up?): exiting with %d.",
            environment.host,
            VOID_RUN_EXIT_CODE,
        )
        environment.process_exit_code = VOID_RUN_EXIT_CODE
