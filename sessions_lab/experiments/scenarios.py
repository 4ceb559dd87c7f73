"""Scenarios as data: a named timeline of fault events, and what each mode should show.

A scenario never acts by itself; the runner fires its events against the
cluster at their time. Each scenario predicts, per mode, what the workshop
will see — and a check that turns the measured result into a verdict, so a
prediction that stops holding is reported as "unexpected", not hidden.

A prediction is read from the mode's record (``sessions_lab.modes``: does an
instance's death lose sessions, which server holds them, is the database
behind it) and the run's options, never from the mode's name: a new mode is
predicted for as soon as its record says how it behaves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sessions_lab.cluster.replication import PRIMARY
from sessions_lab.experiments.expectations import (
    NOBODY,
    NOT_APPLICABLE,
    Expectation,
    FaultEvent,
    ModeResult,
    RunOptions,
    everybody_loses,
    nobody_loses,
    nothing_fails,
    only_pinned_users_lose,
    store_process,
    stores,
)
from sessions_lab.experiments.no_fault import (
    idle_timeout_expects,
    idle_timeout_load,
    idle_timeout_refusal,
    no_faults,
    scale_out,
    scale_out_expects,
    two_tabs_expects,
    two_tabs_load,
    two_tabs_refusal,
)
from sessions_lab.modes import Mode, StoreServer, get_mode

__all__ = [  # and, for the runner and the tests, the vocabulary of expectations.py
    "NOBODY",
    "NOT_APPLICABLE",
    "SCENARIOS",
    "Expectation",
    "FaultEvent",
    "RunOptions",
    "Scenario",
    "get_scenario",
    "stores",
    "verdict",
]


def _no_separate_store(mode: Mode, options: RunOptions) -> str:
    return "keeps no session in a separate store"


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    events: Callable[[int], tuple[FaultEvent, ...]]  # instances → timeline
    expectations: Callable[[Mode, RunOptions], Expectation | None] = field(repr=False)
    # (mode's record, the run's options) → Expectation, or None: does not apply
    inapplicable: Callable[[Mode, RunOptions], str] = field(default=_no_separate_store, repr=False)
    # (mode's record, the run's options) → why it does not apply, after the mode's name
    load: Callable[[RunOptions], tuple[str, ...]] = field(default=lambda options: (), repr=False)
    # the run's options → Locust arguments for this scenario's shoppers (two-tabs: --tabs 2)
    refusal: Callable[[RunOptions], str | None] = field(default=lambda options: None, repr=False)
    # the run's options → why the scenario cannot run with them (a CLI error), or None

    def expectation(
        self,
        mode: str,
        db: str = "sqlite",
        redis_persistence: str = "none",
        **choices: Any,
    ) -> Expectation | None:
        """The prediction for ``mode``; ``choices``: the other ``RunOptions`` of the run."""
        return self.expectations(get_mode(mode), RunOptions(db, redis_persistence, **choices))

    def why_not_applicable(
        self, mode: str, db: str = "sqlite", redis_persistence: str = "none"
    ) -> str:
        """Why the scenario does not apply to ``mode``: "<mode> <reason>"."""
        reason = self.inapplicable(get_mode(mode), RunOptions(db, redis_persistence))
        return f"{mode} {reason}"

    def timeline(self, instances: int, store: str | None = None) -> tuple[FaultEvent, ...]:
        return tuple(event.resolved(store) for event in self.events(instances))


def _kill_one(instances: int) -> tuple[FaultEvent, ...]:
    return (FaultEvent(0.4, "kill", "app2", "KILL"), FaultEvent(0.7, "start", "app2"))


def no_request_fails(result: ModeResult) -> bool:
    """No request left without an answer, but those cut off mid-answer (counted apart):
    nginx re-sends what a dead instance never answered — a GET, a PUT, a DELETE, a
    login, a checkout with its Idempotency-Key — but cannot take back a status line."""
    return result["failed_requests"] - result.get("truncated_answers", 0) == 0


# Why nothing fails when an instance dies: said once, in every mode's prediction.
RESENT = "no request fails: nginx re-sends to another instance what app2 never answered"


def _kill_one_expects(mode: Mode, options: RunOptions) -> Expectation:
    if not mode.keeps_sessions_on_instance_death:
        return Expectation(
            f"the users pinned to app2 lose their session, nobody else does; {RESENT}",
            lambda result: only_pinned_users_lose(result) and no_request_fails(result),
        )
    return Expectation(
        f"nobody loses a session; {RESENT}",
        lambda result: nobody_loses(result) and no_request_fails(result),
    )


def _rolling(drain: bool) -> Callable[[int], tuple[FaultEvent, ...]]:
    def events(instances: int) -> tuple[FaultEvent, ...]:
        timeline: list[FaultEvent] = []
        step = 0.7 / instances
        for index in range(instances):
            start = 0.15 + index * step
            target = f"app{index + 1}"
            if drain:
                timeline.append(FaultEvent(round(start, 3), "drain", target))
            timeline.append(FaultEvent(round(start + step * 0.3, 3), "kill", target, "TERM"))
            timeline.append(FaultEvent(round(start + step * 0.6, 3), "start", target))
        return tuple(timeline)

    return events


def _rolling_expects(drain: bool) -> Callable[[Mode, RunOptions], Expectation]:
    def expects(mode: Mode, options: RunOptions) -> Expectation:
        if not mode.keeps_sessions_on_instance_death:
            return Expectation(
                "every instance restarts in turn, so every pinned user loses its session once",
                lambda result: result["users_lost_session"] > 0,
            )
        if drain:
            return Expectation(
                "nginx is reloaded without each instance before its SIGTERM, so it never tries "
                "a stopping instance: no request is re-sent, none fails, nobody loses a session",
                lambda result: nothing_fails(result) and result["retried_requests"] == 0,
            )
        # Measured: gunicorn's SIGTERM finishes the requests it has begun, and
        # nginx re-sends what a stopped instance refuses, so failures are rare
        # (a request queued in the listen backlog when the socket closes);
        # what the drain saves is the re-sending, which is always there.
        return Expectation(
            "nginx keeps sending to each instance until it refuses a connection, then re-sends "
            "that request elsewhere (retried requests > 0); nobody loses a session",
            lambda result: nobody_loses(result) and result["retried_requests"] > 0,
        )

    return expects


def _store_restart(instances: int) -> tuple[FaultEvent, ...]:
    return (FaultEvent(0.4, "kill", "store", "KILL"), FaultEvent(0.5, "start", "store"))


def _store_restart_expects(mode: Mode, options: RunOptions) -> Expectation | None:
    if store_process(mode, options.db) is None:
        return None
    if mode.store_server is StoreServer.REDIS:
        # Checked before persistence: with the database behind it, Redis may
        # come back empty or not, nobody loses a session either way.
        if mode.backed_by_database:
            return Expectation(
                "Redis restarts empty but the database has every session: nobody loses one",
                nobody_loses,
            )
        if options.redis_persistence == "none":
            return Expectation(
                "Redis restarts empty: every logged-in user loses its session", everybody_loses
            )
        return Expectation(
            "Redis reloads its append-only file: nobody loses a session (requests fail while it is down)",
            nobody_loses,
        )
    # PostgreSQL always restarts with its data directory: nothing to lose.
    return Expectation(
        "PostgreSQL restarts with its data: nobody loses a session (requests fail while it is down)",
        nobody_loses,
    )


def _store_restart_inapplicable(mode: Mode, options: RunOptions) -> str:
    if mode.store_server is StoreServer.MEMCACHED:
        return (
            "has no single store to restart: its sessions are sharded over one memcached per "
            "instance (cache-node-down kills one of them)"
        )
    if mode.store_server is StoreServer.REPLICATED:
        return (
            "keeps every session on a primary and its replicas: store-failover kills the "
            "primary and lets Sentinel promote a replica"
        )
    return _no_separate_store(mode, options)


def _cache_node_down(instances: int) -> tuple[FaultEvent, ...]:
    node = f"memcached{min(2, instances)}"
    return (FaultEvent(0.4, "kill", node, "KILL"), FaultEvent(0.7, "start", node))


def only_faulted_node_users_lose(result: ModeResult) -> bool:
    """Somebody lost a session, and every loss of every user who did came on the killed node."""
    lost = result["users_lost_session"]
    return lost > 0 and result["users_lost_on_faulted_node"] == lost


def _cache_node_down_expects(mode: Mode, options: RunOptions) -> Expectation | None:
    if mode.store_server is not StoreServer.MEMCACHED:
        return None
    return Expectation(
        "the users whose session key hashes to the killed node lose their session, whichever "
        "instance served them, and nobody else; it comes back empty",
        only_faulted_node_users_lose,
    )


def _cache_node_down_inapplicable(mode: Mode, options: RunOptions) -> str:
    return "keeps no session on memcached nodes: there is no cache node to kill"


def _store_failover(instances: int) -> tuple[FaultEvent, ...]:
    return (FaultEvent(0.4, "kill", PRIMARY, "KILL"), FaultEvent(0.7, "start", PRIMARY))


def writes_failed_for_a_while(result: ModeResult) -> bool:
    return result["write_unavailable_s"] > 0


# What both replications show: said once, in both predictions.
FAILOVER = "writes fail until the Sentinels promote a replica, reads go on from the replicas"


def _store_failover_expects(mode: Mode, options: RunOptions) -> Expectation | None:
    if mode.store_server is not StoreServer.REPLICATED:
        return None
    if options.replication == "sync":
        return Expectation(
            f"{FAILOVER}; each save waited for a replica, so no acknowledged write is lost",
            lambda result: writes_failed_for_a_while(result) and nobody_loses(result),
        )
    return Expectation(
        f"{FAILOVER}; saves did not wait for a replica, so the last writes may be lost and a "
        "read may show an older cart",
        writes_failed_for_a_while,
    )


def _store_failover_inapplicable(mode: Mode, options: RunOptions) -> str:
    return "has no replicated primary: nothing for Sentinel to fail over"


def _lb_down(instances: int) -> tuple[FaultEvent, ...]:
    return (FaultEvent(0.4, "kill", "nginx", "KILL"), FaultEvent(0.55, "start", "nginx"))


def _lb_down_expects(mode: Mode, options: RunOptions) -> Expectation:
    return Expectation(
        "every mode fails alike while nginx is down (connection errors), and nobody loses a "
        "session: the load balancer itself must be redundant",
        lambda result: nobody_loses(result) and result["failures"]["connection"] > 0,
    )


def _hang_one(instances: int) -> tuple[FaultEvent, ...]:
    # Hung for 40% of the run: far longer than nginx's 5 s read timeout, so the
    # requests caught early time out, are re-sent elsewhere, and are still
    # held (late writes) when app2 resumes.
    return (FaultEvent(0.3, "kill", "app2", "STOP"), FaultEvent(0.7, "start", "app2"))


def _hang_one_expects(mode: Mode, options: RunOptions) -> Expectation:
    # A hung instance is, for its pinned users, a dead one: nginx gives up on
    # it and sends them where their instance-local session is not.
    if not mode.keeps_sessions_on_instance_death:
        return Expectation(
            "users pinned to the hung app2 wait for nginx's read timeout, are moved to another "
            "instance and lose their session there",
            only_pinned_users_lose,
        )
    caught = (
        "requests caught on the hung app2 wait for nginx's 5 s read timeout and are re-sent "
        "to another instance; nobody is logged out"
    )
    if mode.store_server is StoreServer.NONE:
        # The session is the client's cookie: a late write's new cookie rides
        # on an answer that reaches nobody.
        return Expectation(
            f"{caught}; the writes app2 applies when it resumes change nothing (the session "
            "travels in the cookie, and their answers reach nobody)",
            nobody_loses,
        )
    if options.conditional_writes:
        return Expectation(
            f"{caught}; the writes app2 held carry a stale If-Match when it resumes and are "
            "refused (412): no cart is overwritten",
            nobody_loses,
        )
    return Expectation(
        f"{caught}; when app2 resumes it applies the writes it held a second time (late "
        "writes), so a cart changed since is overwritten: only as many users as there are "
        "late writes find a cart they did not set",
        late_writes_explain_losses,
    )


def late_writes_explain_losses(result: ModeResult) -> bool:
    """Nobody logged out, and no more carts lost than late writes were applied."""
    return (
        result["failures"]["logged_out"] == 0
        and result["users_lost_session"] <= result["late_writes_applied"]
    )


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "kill-one",
            "SIGKILL app2 at 40% of the run, start it again at 70%",
            _kill_one,
            _kill_one_expects,
        ),
        Scenario(
            "rolling-restart",
            "a careful deploy: drain, SIGTERM and restart each instance in turn",
            _rolling(drain=True),
            _rolling_expects(drain=True),
        ),
        Scenario(
            "rolling-restart-nodrain",
            "the same deploy without draining first: what the drain buys",
            _rolling(drain=False),
            _rolling_expects(drain=False),
        ),
        Scenario(
            "store-restart",
            "kill the mode's store (Redis, or PostgreSQL with --db postgres) and start it again",
            _store_restart,
            _store_restart_expects,
            _store_restart_inapplicable,
        ),
        Scenario(
            "cache-node-down",
            "SIGKILL memcached2 at 40% of the run, start it again (empty) at 70%",
            _cache_node_down,
            _cache_node_down_expects,
            _cache_node_down_inapplicable,
        ),
        Scenario(
            "store-failover",
            "SIGKILL the Valkey primary at 40% (Sentinel promotes a replica), start it at 70%",
            _store_failover,
            _store_failover_expects,
            _store_failover_inapplicable,
        ),
        Scenario(
            "lb-down",
            "kill nginx at 40% of the run, start it again at 55%",
            _lb_down,
            _lb_down_expects,
        ),
        Scenario(
            "hang-one",
            "SIGSTOP app2 at 30% of the run (a hung instance), SIGCONT at 70%",
            _hang_one,
            _hang_one_expects,
        ),
        Scenario(
            "two-tabs",
            "no fault: each shopper changes its cart from two tabs at the same moment",
            no_faults,
            two_tabs_expects,
            load=two_tabs_load,
            refusal=two_tabs_refusal,
        ),
        Scenario(
            "idle-timeout",
            "no fault: every third shopper pauses for twice --session-idle, then shops on",
            no_faults,
            idle_timeout_expects,
            load=idle_timeout_load,
            refusal=idle_timeout_refusal,
        ),
        Scenario(
            "scale-out",
            "add an instance at 50% of the run",
            scale_out,
            scale_out_expects,
        ),
    )
}


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"Unknown scenario {name!r}. Scenarios: {', '.join(SCENARIOS)}.") from None


def verdict(
    scenario: Scenario,
    mode: str,
    result: ModeResult,
    db: str,
    persistence: str,
    **choices: Any,
) -> str:
    expectation = scenario.expectation(mode, db, persistence, **choices)
    if expectation is None:
        return NOT_APPLICABLE
    return "as expected" if expectation.holds(result) else "unexpected"
