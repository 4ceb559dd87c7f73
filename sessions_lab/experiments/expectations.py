"""What a scenario predicts is checked with: fault events, expectations, and their tests.

The vocabulary of ``scenarios.py``: a fault event at a share of the run,
an expectation (words and a check on a mode's measured result), the run
options a prediction may depend on, the checks the scenarios share, and
which cluster process holds a mode's state (the "store" a scenario breaks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sessions_lab.modes import Mode, StoreServer, get_mode

NOT_APPLICABLE = "not applicable"

# Users start over this share of the run: their logins (a password hash each,
# ~0.4 s of CPU) spread out instead of queueing, and all have started by the
# time the first fault of most scenarios comes (30% or later; a rolling
# restart's first drain, at 15%, meets the last logins, which nginx moves
# to another instance like any request).
RAMP_UP_SHARE = 0.15

ModeResult = Mapping[str, Any]  # one mode's entry of summary.json


@dataclass(frozen=True)
class FaultEvent:
    """One thing done to the cluster, at a fraction of the run's duration."""

    at: float  # 0..1 of the run
    action: str  # kill | start | drain | add
    target: str  # app2, redis, postgres, memcached2, nginx, or "store" (the mode's own store)
    signal: str | None = None  # for kill: KILL, TERM or STOP

    def at_seconds(self, duration_s: float) -> float:
        return round(self.at * duration_s, 1)

    def resolved(self, store: str | None) -> FaultEvent:
        """The event with "store" replaced by the mode's store (redis or postgres)."""
        if self.target != "store" or store is None:
            return self
        return FaultEvent(self.at, self.action, store, self.signal)


@dataclass(frozen=True)
class Expectation:
    """What a mode should show, in words and as a check on its measured result."""

    text: str
    holds: Callable[[ModeResult], bool]


def nobody_loses(result: ModeResult) -> bool:
    return result["users_lost_session"] == 0


def nothing_fails(result: ModeResult) -> bool:
    return nobody_loses(result) and result["failed_requests"] == 0


def only_pinned_users_lose(result: ModeResult) -> bool:
    lost = result["users_lost_session"]
    return lost > 0 and result["users_lost_on_faulted_instance"] == lost


def everybody_loses(result: ModeResult) -> bool:
    # "Everybody" who was logged in when the store restarted: allow for users
    # that had not started yet.
    return result["users_lost_session"] >= max(1, result["users_total"] // 2)


def anything(result: ModeResult) -> bool:
    return True


@dataclass(frozen=True)
class RunOptions:
    """The run's options a prediction depends on (besides the mode)."""

    db: str = "sqlite"
    redis_persistence: str = "none"
    conditional_writes: bool = False  # the shoppers send If-Match on cart writes
    replication: str = "async"  # replicated mode: does each save wait for a replica?
    cart_store: str = "session"  # rows: a logged-in user's cart is rows per line in every mode
    encrypt_sessions: bool = False  # every stored session encrypted
    session_idle: int | None = None  # seconds without a request that end a login
    session_absolute: int | None = None  # seconds after the login that end it
    affinity: str = "cookie"  # sticky mode: how nginx pins a client (cookie, route, ip…)
    duration_s: int = 40  # the load's length


NOBODY = Expectation("nobody loses a session", nobody_loses)


def stores(mode: str, db: str, redis_persistence: str) -> str | None:
    """The store a mode's sessions (or jwt's carts) live in, if it is a separate server."""
    return store_process(get_mode(mode), db)


def store_process(mode: Mode, db: str) -> str | None:
    """The cluster process (``redis``, ``postgres``) holding ``mode``'s state, if any.

    The database is a server of its own only with ``--db postgres``: SQLite is
    a file, with nothing to kill and restart.
    """
    if mode.store_server is StoreServer.REDIS:
        return "redis"
    if mode.store_server is StoreServer.DATABASE and db == "postgres":
        return "postgres"
    return None
