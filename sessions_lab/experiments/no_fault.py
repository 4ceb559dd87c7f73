"""The scenarios that break nothing: an instance added, two tabs at once, shoppers who walk away.

Kept apart from the fault scenarios: nothing breaks here, and what is lost
is lost by design. ``two-tabs``: a mode that saves the cart whole with the
session (``Mode.saves_cart_whole``) loses one tab's change whenever both
save at once; a cart kept as rows per line (``jwt`` mode, or ``--cart-store
rows`` in any mode) changes only the line each request names.
``idle-timeout``: every third shopper pauses for twice ``--session-idle``;
exactly those are logged out, in every mode, each the way it can enforce it.
``scale-out``: where sessions are pinned by a cookie, long sessions keep
every user where it logged in, so the new instance gets none of them.
"""

from __future__ import annotations

import math

from sessions_lab.experiments.expectations import (
    RAMP_UP_SHARE,
    Expectation,
    FaultEvent,
    ModeResult,
    RunOptions,
    anything,
    nobody_loses,
)
from sessions_lab.modes import Credential, Mode

# The shoppers' side (loadtests/two_tabs.py): only logged-in shoppers, two tabs each.
TWO_TABS_LOAD = ("--tabs", "2", "Shopper")
# A pausing shopper stays away this many idle limits: long enough that no
# enforcement (a refresh token rotated a moment before the pause) lets it back in.
PAUSE_IDLE_LIMITS = 2


def no_faults(instances: int) -> tuple[FaultEvent, ...]:
    return ()


def scale_out(instances: int) -> tuple[FaultEvent, ...]:
    return (FaultEvent(0.5, "add", f"app{instances + 1}"),)


# Affinities that pin a client by what it carries (a cookie, a route in the URL):
# adding an instance moves nobody. ip hashing (and none) moves some.
PINNED_BY_CLIENT = ("cookie", "learn", "route")


def scale_out_expects(mode: Mode, options: RunOptions) -> Expectation:
    # Only an instance-local session cares which instance a client lands on.
    if mode.keeps_sessions_on_instance_death:
        return Expectation(
            "the new instance takes a share of the traffic; nobody loses a session", nobody_loses
        )
    if options.affinity in PINNED_BY_CLIENT:
        return Expectation(
            f"{options.affinity} affinity keeps every user on the instance that served its login: "
            "nobody moves, so nobody loses a session; the new instance gets only the logins made "
            "after it comes, and the longer the sessions, the longer the load stays uneven",
            nobody_loses,
        )
    return Expectation(
        f"with {options.affinity} affinity some users move to the new instance and lose their "
        "session",
        anything,
    )


def two_tabs_load(options: RunOptions) -> tuple[str, ...]:
    return TWO_TABS_LOAD


def two_tabs_refusal(options: RunOptions) -> str | None:
    if options.conditional_writes:
        return (
            "two-tabs measures the updates a blind save overwrites; with --conditional-writes "
            "a tab's write is refused (412) instead: run it without"
        )
    return None


def no_update_lost(result: ModeResult) -> bool:
    return result["updates_acknowledged"] > 0 and result["lost_updates"] == 0


def some_updates_lost(result: ModeResult) -> bool:
    return result["lost_updates"] > 0


def two_tabs_expects(mode: Mode, options: RunOptions) -> Expectation:
    if not mode.saves_cart_whole or options.cart_store == "rows":
        return Expectation(
            "the cart is database rows per line: each tab's write changes only its own line, "
            "so no acknowledged update is lost; nobody is logged out",
            lambda result: no_update_lost(result) and nobody_loses(result),
        )
    last_wins = (
        "both answers set the session cookie and the browser keeps the last one"
        if mode.credential is Credential.SIGNED_SESSION
        else "both requests load the same session and the last to save it wins"
    )
    return Expectation(
        f"the cart is saved whole with the session: when both tabs write at once, {last_wins}, "
        "so some acknowledged updates are lost; nobody is logged out "
        "(--cart-store rows keeps them)",
        lambda result: some_updates_lost(result) and nobody_loses(result),
    )


def idle_pause_s(options: RunOptions) -> int:
    return PAUSE_IDLE_LIMITS * (options.session_idle or 0)


def idle_timeout_load(options: RunOptions) -> tuple[str, ...]:
    return ("--idle-pause", str(idle_pause_s(options)))


# After its login, a pausing shopper takes a few steps before it pauses, and
# needs a few seconds after it to find out it was logged out.
BEFORE_AND_AFTER_PAUSE_S = 11


def idle_timeout_refusal(options: RunOptions) -> str | None:
    idle = options.session_idle
    if idle is None:
        return "idle-timeout needs --session-idle S (the workshop uses 5)"
    # Every user has started by RAMP_UP_SHARE of the run; the last must come back in time.
    shortest = math.ceil((idle_pause_s(options) + BEFORE_AND_AFTER_PAUSE_S) / (1 - RAMP_UP_SHARE))
    if options.duration_s < shortest:
        return (
            f"idle-timeout with --session-idle {idle} needs --duration {shortest} or more: "
            f"the shoppers who pause for {idle_pause_s(options)} s must come back before the end"
        )
    return None


def only_the_paused_are_logged_out(result: ModeResult) -> bool:
    paused = result["users_paused"]
    return (
        paused > 0
        and result["users_paused_logged_out"] == paused
        and result["users_active_logged_out"] == 0
    )


def enforced_by(mode: Mode) -> str:
    """How ``mode`` ends an idle login: what expires, and where."""
    if mode.credential is Credential.JWT:
        return "the refresh token, rotated on each use, expires with the idle limit"
    if mode.credential is Credential.SIGNED_SESSION:
        return "the cookie, re-signed on each request, is checked against its max age"
    return f"the session's expiry in {mode.store}, refreshed on each request, passes"


def idle_timeout_expects(mode: Mode, options: RunOptions) -> Expectation:
    return Expectation(
        f"every third shopper pauses for {idle_pause_s(options)} s, past the "
        f"{options.session_idle} s idle limit, and is logged out on its return ({enforced_by(mode)}); "
        "nobody who kept shopping is",
        only_the_paused_are_logged_out,
    )
