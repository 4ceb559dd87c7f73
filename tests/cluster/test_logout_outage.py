"""Logout while Redis is paused or restarting, through nginx and real processes.

A user logs in and fills a cart; Redis is SIGSTOPped (or killed, and started
again from its append-only file); the user logs out; Redis comes back; the
old session cookie is replayed, as a thief who copied it would. Each mode
may refuse the logout (a 503 that says so: the replay is then still logged
in, and the user knows) or revoke the session (the replay is anonymous).
What it must never do is answer 200 and leave the old cookie logged in —
Django's own ``cached_db`` engine, ignoring Redis errors, did exactly that.
Both Redis modes pin "refused", then show the retried logout revoking.
``memcached`` pins the other promise (``COPY_SURVIVES``): its client skips a
paused node, the logout finds no session and answers 200, and the node's copy
is served again once it resumes.
"""

from __future__ import annotations

import pytest
from requests import Response

from sessions_lab.modes import MODES, OutageLogout, StoreServer
from sessions_lab.waiting import wait_until
from tests.cluster.lab import Lab, Shopper

pytestmark = pytest.mark.cluster

REDIS_MODES = [m.name for m in MODES.values() if m.store_server is StoreServer.REDIS]
REFUSED = "refused (503), still logged in"
REVOKED = "revoked"
NEVER = "200 and still logged in"


def lab_for(module_lab, mode: str) -> Lab:
    # Append-only: a restarted Redis comes back with the copies it held, the
    # case where a copy a logout failed to delete would be served again.
    return module_lab("--mode", mode, "--instances", "2", "--redis-persistence", "aof")


def shopper_with_cart(lab: Lab, mode: str, user: str) -> Shopper:
    shopper = Shopper(lab, mode)
    shopper.login(user)
    assert shopper.put_item(1, 2).status_code == 200
    assert shopper.cart() == {1: 2}
    return shopper


def replay(lab: Lab, mode: str, cookie: str) -> tuple[bool, dict[int, int]]:
    """What a copy of the session cookie gets now: logged in or not, and the cart."""
    thief = Shopper(lab, mode)
    thief.http.cookies.set("sessionid", cookie)
    # Just after a restart Redis may still be loading its file: a 503 until it is done.
    assert wait_until(lambda: thief.call("GET", "/api/whoami/").status_code == 200, 10)
    return thief.whoami()["authenticated"], thief.cart()


def outcome(logout_status: int, replay_logged_in: bool) -> str:
    if logout_status == 503:
        return REFUSED if replay_logged_in else "refused (503), yet revoked"
    if logout_status == 200:
        return NEVER if replay_logged_in else REVOKED
    return f"HTTP {logout_status}"


def assert_refused_still_logged_in(lab: Lab, mode: str, logout: Response, cookie: str) -> None:
    """``OutageLogout.REFUSED`` as the user meets it: a 503 that says so and when to try
    again, and the session unchanged: a copy of the cookie is still logged in, cart and all."""
    assert logout.status_code == 503, logout.text
    assert int(logout.headers["Retry-After"]) > 0
    assert logout.json()["detail"].startswith("Could not log you out")
    logged_in, cart = replay(lab, mode, cookie)
    assert outcome(logout.status_code, logged_in) == REFUSED  # the user was told
    assert cart == {1: 2}


def logout_while_redis_is(lab: Lab, shopper: Shopper, fault: tuple[str, ...]):
    lab.cli("kill", "redis", *fault)
    try:
        return shopper.call("POST", "/api/session/logout/")
    finally:
        lab.cli("start", "redis")  # SIGCONT, or a restart that reloads the file


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    "fault",
    [("--signal", "STOP"), ("--signal", "KILL")],
    ids=["during-a-redis-stall", "while-redis-restarts-from-its-aof"],
)
@pytest.mark.parametrize("mode", REDIS_MODES)  # one lab per mode: both faults on it
def test_logout_during_a_redis_outage_is_refused_never_200_and_still_logged_in(
    module_lab, mode: str, fault: tuple[str, ...]
) -> None:
    assert MODES[mode].logout_while_store_down is OutageLogout.REFUSED
    lab = lab_for(module_lab, mode)
    user = "user1" if "STOP" in fault else "user2"
    shopper = shopper_with_cart(lab, mode, user)
    cookie = shopper.http.cookies["sessionid"]

    logout = logout_while_redis_is(lab, shopper, fault)

    assert_refused_still_logged_in(lab, mode, logout, cookie)

    # Redis is back: the retried logout goes through and the copy is worthless.
    again = shopper.call("POST", "/api/session/logout/")
    assert again.status_code == 200, again.text
    logged_in, cart = replay(lab, mode, cookie)
    assert outcome(again.status_code, logged_in) == REVOKED
    assert cart == {}


@pytest.mark.timeout(90)
def test_cached_db_still_serves_reads_from_the_database_during_a_redis_stall(module_lab) -> None:
    lab = lab_for(module_lab, "cached_db")
    shopper = shopper_with_cart(lab, "cached_db", "user3")
    lab.cli("kill", "redis", "--signal", "STOP")
    try:
        assert shopper.whoami()["username"] == "user3"
        assert shopper.cart() == {1: 2}
        refused = shopper.put_item(1, 5)  # a change Redis cannot first forget
        assert refused.status_code == 503, refused.text
        assert "your session was not changed" in refused.json()["detail"]
    finally:
        lab.cli("start", "redis")
    assert shopper.cart() == {1: 2}
    assert shopper.put_item(1, 5).status_code == 200
    assert shopper.cart() == {1: 5}


MEMCACHED_MODES = [m.name for m in MODES.values() if m.store_server is StoreServer.MEMCACHED]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", MEMCACHED_MODES)
def test_logout_while_its_memcached_node_is_paused_is_200_and_the_copy_returns(
    module_lab, mode: str
) -> None:
    assert MODES[mode].logout_while_store_down is OutageLogout.COPY_SURVIVES
    lab = module_lab("--mode", mode, "--instances", "2")
    shopper = shopper_with_cart(lab, mode, "user4")
    cookie = shopper.http.cookies["sessionid"]
    node = f"memcached{shopper.call('GET', '/api/cart/').headers['X-Session-Node']}"

    lab.cli("kill", node, "--signal", "STOP")
    try:
        logout = shopper.call("POST", "/api/session/logout/")
        assert logout.status_code == 200, logout.text  # the session is not found: logged out
        assert shopper.whoami()["authenticated"] is False
    finally:
        lab.cli("start", node)  # SIGCONT: the node still holds the session

    # Each instance's client takes the node back within seconds; then the copy, which
    # the logout never reached, is served again, login and cart.
    assert wait_until(lambda: replay(lab, mode, cookie) == (True, {1: 2}), 20)


REPLICATED_MODES = [m.name for m in MODES.values() if m.store_server is StoreServer.REPLICATED]
SENTINELS = ("sentinel1", "sentinel2", "sentinel3")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", REPLICATED_MODES)
def test_with_no_primary_and_no_sentinel_answering_a_logout_is_refused_not_a_hang(
    make_lab, mode: str
) -> None:
    assert MODES[mode].logout_while_store_down is OutageLogout.REFUSED
    lab = make_lab("--mode", mode, "--instances", "2")
    shopper = shopper_with_cart(lab, mode, "user4")
    cookie = shopper.http.cookies["sessionid"]
    for sentinel in SENTINELS:  # hung: they accept connections and answer nothing
        lab.cli("kill", sentinel, "--signal", "STOP")
    lab.cli("kill", "redis-primary")
    try:
        logout = shopper.call("POST", "/api/session/logout/")
        # Every client gives up after its 1 s timeout: a 503 that says so, not a hang. Reads
        # go on from the replicas: the copy is still logged in, as the user was told.
        assert_refused_still_logged_in(lab, mode, logout, cookie)
        assert (
            "No master found"
            in lab.cli("logs", "app1", "-n", "200").stdout
            + lab.cli("logs", "app2", "-n", "200").stdout
        )
    finally:
        # Restarted, not resumed: a Sentinel that finds its clock jumped (it was paused)
        # stays in TILT mode for 30 s, acting on nothing.
        for sentinel in SENTINELS:
            lab.cli("kill", sentinel)
            lab.cli("start", sentinel)
    # The Sentinels promote a replica: the retried logout goes through, the copy is worthless.
    assert wait_until(lambda: shopper.call("POST", "/api/session/logout/").status_code == 200, 30)
    assert replay(lab, mode, cookie) == (False, {})
