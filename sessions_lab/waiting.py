"""Waiting for a condition, with a deadline: the lab's one polling loop.

Processes come up, die and reload on their own schedule, so the lab never
sleeps a fixed time to synchronise with them: it polls a condition until it
holds or a deadline passes, and the caller decides what a timeout means.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL = 0.05  # seconds between two looks: fast enough for a human, cheap for two cores


def wait_until(
    condition: Callable[[], T],
    timeout: float,
    *,
    interval: float = POLL,
    abort: Callable[[], bool] | None = None,
) -> T:
    """Call ``condition`` until it returns something truthy or ``timeout`` seconds pass.

    Returns that truthy value, or the last falsy one at the deadline (the
    condition is always asked at least once, and once more at the deadline).
    ``abort`` ends the wait early, returning the last falsy value.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or (abort is not None and abort()):
            return result
        left = deadline - time.monotonic()
        if left <= 0:
            return result
        time.sleep(min(interval, left))
