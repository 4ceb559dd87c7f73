"""Idle and absolute session timeouts (``SESSION_IDLE_S``, ``SESSION_ABSOLUTE_S``), in every mode.

The idle limit is enforced by each store's own expiry (a TTL in Redis,
memcached or Valkey, a row's ``expire_date``, the signed cookie's max age, a
refresh token's ``exp``), which no test can move: those tests set a limit
of a few seconds and wait for the store to forget a silent login, polling
with a deadline, while an active shopper keeps using theirs. The absolute
limit is the shop's own check of a recorded login time: those tests move
the one clock it reads (``shop.timeouts.time``) instead.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys
import time
from datetime import timedelta
from importlib import import_module

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import SESSION_KEY
from django.core.exceptions import MiddlewareNotUsed
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from sessions_lab.paths import PROJECT_ROOT
from sessions_lab.timeout_settings import (
    ABSOLUTE,
    IDLE,
    seconds_or_none,
    timeout_settings,
)
from shop import timeouts
from shop.jwt_cookies import issue_tokens
from shop.timeouts import LOGIN_AT, LOGIN_AT_CLAIM
from tests.conftest import SESSION_MODES
from tests.shoppers import Shopper
from tests.test_pages import browser, log_in

pytestmark = pytest.mark.django_db

# memcached, the signed cookie and a token count whole seconds, so each may
# forget a session up to EARLY_S before IDLE_S has passed since its last use:
# one second for a whole-second expiry, and in memcached two, as its clock (a
# once-a-second tick reading the monotonic clock's whole seconds) now and then
# steps two seconds at once. IDLE_S leaves a second of use beyond that.
IDLE_S = 3
EARLY_S = 2
ABSOLUTE_S = 3600


class Clock:
    """``shop.timeouts``' clock, moved by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    moved = Clock()
    monkeypatch.setattr(timeouts, "time", moved)
    return moved


@pytest.fixture(params=SESSION_MODES)
def session_mode(request: pytest.FixtureRequest, use_mode) -> str:
    """Each of the modes that keep a server or cookie session."""
    return use_mode(request.param)


def apply_timeouts(settings, monkeypatch, idle: int | None = None, absolute: int | None = None):
    """The settings an instance started with ``idle``/``absolute`` seconds has."""
    env = {IDLE: str(idle or ""), ABSOLUTE: str(absolute or "")}
    for key, value in timeout_settings(env, settings.SIMPLE_JWT).items():
        setattr(settings, key, value)
    # simplejwt reads the lifetimes into its token classes once, at import:
    # as a process started with these settings would have them.
    lifetimes = settings.SIMPLE_JWT
    monkeypatch.setattr(AccessToken, "lifetime", lifetimes["ACCESS_TOKEN_LIFETIME"])
    monkeypatch.setattr(RefreshToken, "lifetime", lifetimes["REFRESH_TOKEN_LIFETIME"])


@pytest.fixture
def with_timeouts(settings, monkeypatch):
    """Call with ``idle=``/``absolute=`` seconds: ``apply_timeouts``.

    Before creating the clients: each loads the middleware (and so which of
    ``shop.timeouts``' remove themselves) on its first request.
    """
    return functools.partial(apply_timeouts, settings, monkeypatch)


def refreshed(shopper: Shopper) -> bool:
    """Trade the shopper's refresh token for a new pair, as an API client does on a 401."""
    response = shopper.call("post", "/api/token/refresh/", {"refresh": shopper.refresh})
    if response.status_code != 200:
        return False
    shopper.access, shopper.refresh = response.json()["access"], response.json()["refresh"]
    return True


def logged_in(shopper: Shopper) -> bool:
    """Whether the shop still knows this shopper, asked as its client would (a refresh on a 401)."""
    response = shopper.call("get", "/api/whoami/")
    if shopper.jwt and response.status_code == 401 and refreshed(shopper):
        response = shopper.call("get", "/api/whoami/")
    if shopper.jwt and response.status_code == 401:
        return False
    assert response.status_code == 200, response.content
    return response.json()["authenticated"]


def forgotten(shopper: Shopper) -> bool:
    """Whether the shopper's login has expired where it lives, asked without using (refreshing) it."""
    if shopper.jwt:
        try:
            RefreshToken(shopper.refresh)
        except TokenError:
            return True
        return False
    store = import_module(django_settings.SESSION_ENGINE).SessionStore(shopper.session_cookie())
    return SESSION_KEY not in store.load()


def logged_in_shopper(mode: str) -> Shopper:
    shopper = Shopper(mode)
    assert shopper.login().status_code == 200
    return shopper


def copy_of(shopper: Shopper) -> Shopper:
    """Another client carrying the same credential: a copied cookie or token."""
    thief = Shopper(shopper.mode)
    if shopper.jwt:
        thief.access = shopper.access
    else:
        thief.client.cookies["sessionid"] = shopper.session_cookie()
    return thief


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "ten", "1_000", "٣"])
@pytest.mark.parametrize("name", [IDLE, ABSOLUTE])
def test_a_limit_is_a_whole_number_of_seconds_above_zero(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}="):
        seconds_or_none({name: value}, name)
    assert seconds_or_none({name: " 90 "}, name) == 90
    assert seconds_or_none({name: ""}, name) is None
    assert seconds_or_none({}, name) is None


@pytest.mark.parametrize("name", [IDLE, ABSOLUTE])
def test_a_bad_limit_stops_the_instance_at_start_up(name: str) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", name: "0"}
    started = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert f"ImproperlyConfigured: {name}='0'" in started.stderr


def test_an_idle_limit_is_the_session_age_and_the_refresh_tokens_life() -> None:
    simple_jwt = {"ACCESS_TOKEN_LIFETIME": timedelta(minutes=5), "SIGNING_KEY": "k"}
    off = timeout_settings({}, simple_jwt)
    assert off == {IDLE: None, ABSOLUTE: None}  # today's session age and token lifetimes
    hour = timeout_settings({IDLE: "3600", ABSOLUTE: "86400"}, simple_jwt)
    assert hour[IDLE] == hour["SESSION_COOKIE_AGE"] == 3600
    assert hour[ABSOLUTE] == 86400
    assert hour["SIMPLE_JWT"]["REFRESH_TOKEN_LIFETIME"] == timedelta(hours=1)
    assert hour["SIMPLE_JWT"]["ACCESS_TOKEN_LIFETIME"] == timedelta(minutes=5)  # already shorter
    assert hour["SIMPLE_JWT"]["SIGNING_KEY"] == "k"
    minute = timeout_settings({IDLE: "60"}, simple_jwt)["SIMPLE_JWT"]
    assert minute["ACCESS_TOKEN_LIFETIME"] == timedelta(seconds=15)  # a quarter of the limit
    assert timeout_settings({IDLE: "2"}, simple_jwt)["SIMPLE_JWT"]["ACCESS_TOKEN_LIFETIME"] == (
        timedelta(seconds=1)  # a JWT's exp is a whole second
    )


def test_without_limits_nothing_runs_and_nothing_is_recorded(mode: str, demo_user) -> None:
    for middleware in (timeouts.AbsoluteTimeoutMiddleware, timeouts.IdleTimeoutMiddleware):
        with pytest.raises(MiddlewareNotUsed):
            middleware(lambda request: None)
    shopper = logged_in_shopper(mode)
    if shopper.jwt:
        assert LOGIN_AT_CLAIM not in RefreshToken(shopper.refresh)
    else:
        assert LOGIN_AT not in shopper.client.session
    assert LOGIN_AT_CLAIM not in AccessToken(issue_tokens(demo_user)[0])


# ---------------------------------------------------------------- idle


class ActiveShopper:
    """A logged-in shopper that keeps reading (``logged_in``: GETs only), its jar a browser's.

    The jar honours the session cookie's Max-Age, as a browser's and Locust's
    do: a cookie no answer has renewed within it is sent no more. The wall
    clock runs on while the test process stalls (a loaded CI machine): a
    step that ends more than ``IDLE_S - EARLY_S`` s (the limit, less what a
    whole-second expiry may take off) after the previous one began proves
    nothing, so one that finds the shopper logged out logs in again, and
    ``since`` (in use since) starts over. No answer is waited for by sleeping.
    """

    def __init__(self, mode: str) -> None:
        self.began = self.since = self.cookie_until = time.monotonic()
        self.shopper = logged_in_shopper(mode)
        self.cookie_until += IDLE_S

    def still_logged_in(self) -> bool:
        began, jar = time.monotonic(), self.shopper.client.cookies
        if not self.shopper.jwt and began > self.cookie_until:
            jar.pop("sessionid", None)  # expired: a browser would not send it
        sent = jar.get("sessionid")
        answer = logged_in(self.shopper)
        renewed = jar.get("sessionid")
        if renewed is not None and renewed is not sent:  # the answer set it again
            self.cookie_until = began + int(renewed["max-age"] or 0)
        late = time.monotonic() - self.began > IDLE_S - EARLY_S
        self.began = began
        if answer or not late:
            return answer
        self.began = self.since = time.monotonic()  # a stall logged it out: start over
        assert self.shopper.login().status_code == 200
        self.cookie_until = self.began + IDLE_S
        return True


def test_a_login_silent_past_the_idle_limit_ends_and_an_active_one_does_not(
    mode: str, demo_user, with_timeouts
) -> None:
    with_timeouts(idle=IDLE_S)
    active = ActiveShopper(mode)
    silent_began = time.monotonic()
    silent = logged_in_shopper(mode)
    silent_done = time.monotonic()
    while True:
        began = time.monotonic()
        if forgotten(silent):
            break
        # Expired where it lives IDLE_S after its login (memcached's clock: a second later).
        assert began - silent_done < IDLE_S + 1, "the silent login outlived the idle limit"
        assert active.still_logged_in()  # a request every few milliseconds: each one refreshes it
    # Whole seconds in memcached, the signed cookie and a token: up to EARLY_S early.
    assert time.monotonic() - silent_began > IDLE_S - EARLY_S
    while time.monotonic() - active.since < 1.5 * IDLE_S:  # the active one, well past the limit
        assert active.still_logged_in(), f"out after {time.monotonic() - active.since:.1f} s of use"
    assert not logged_in(silent)


def test_a_request_that_does_not_use_the_session_leaves_it_alone(
    session_mode: str, demo_user, with_timeouts
) -> None:
    with_timeouts(idle=IDLE_S)
    shopper = logged_in_shopper(session_mode)
    used = shopper.call("get", "/api/cart/")
    assert used.cookies["sessionid"]["max-age"] == IDLE_S  # its expiry moved, its cookie sent again
    catalog = shopper.call("get", "/api/products/")
    assert catalog.status_code == 200
    assert "sessionid" not in catalog.cookies  # no store write, so none to fail while it is down


def test_a_server_error_does_not_refresh_the_session(
    session_mode: str, demo_user, with_timeouts, monkeypatch
) -> None:
    from shop.api import views as api_views

    with_timeouts(idle=IDLE_S)
    shopper = logged_in_shopper(session_mode)

    def broken(request):
        request.session.get(SESSION_KEY)  # used, then a bug
        raise RuntimeError("a bug")

    monkeypatch.setattr(api_views, "quick_cart", broken)
    shopper.client.raise_request_exception = False
    response = shopper.call("get", "/api/cart/")
    assert response.status_code == 500
    assert "sessionid" not in response.cookies


def test_cached_db_reads_still_answer_while_redis_is_down(
    use_mode, demo_user, with_timeouts, settings, redis_url: str, caplog
) -> None:
    from tests.conftest import apply_mode
    from tests.test_logout_outage import DOWN

    use_mode("cached_db")
    with_timeouts(idle=IDLE_S)
    shopper = logged_in_shopper("cached_db")
    apply_mode(settings, "cached_db", DOWN)
    try:
        # Without Redis the expiry stays (its copy's TTL cannot move with the
        # row): the read is answered from the row, one warning, no new cookie,
        # and the expiry moves on at the next use once Redis is back.
        with caplog.at_level(logging.WARNING, logger="shop.sessions"):
            read = shopper.call("get", "/api/whoami/")
        assert read.status_code == 200 and read.json()["authenticated"]
        assert "sessionid" not in read.cookies
        assert [r.getMessage() for r in caplog.records if r.name == "shop.sessions"] == [
            "session expiry not moved now: its store cannot be reached"
        ]
    finally:
        apply_mode(settings, "cached_db", redis_url)
    assert logged_in(shopper)


# ---------------------------------------------------------------- absolute


def test_a_login_ends_at_the_absolute_limit_however_active(
    mode: str, demo_user, with_timeouts, clock: Clock
) -> None:
    with_timeouts(absolute=ABSOLUTE_S)
    shopper = logged_in_shopper(mode)
    copied = copy_of(shopper)
    for _ in range(3):
        clock.advance(ABSOLUTE_S / 3 - 1)
        assert logged_in(shopper)
    assert logged_in(copied)
    clock.advance(4)
    assert not logged_in(shopper)
    # The time rides with the credential: a signed cookie or a token copied
    # before is refused too, remembered as verified or not.
    assert not logged_in(copied)
    assert logged_in_shopper(mode).whoami()["authenticated"]  # a new login starts afresh


def test_every_token_of_a_jwt_login_carries_its_time(
    use_mode, demo_user, with_timeouts, clock: Clock
) -> None:
    use_mode("jwt")
    with_timeouts(absolute=ABSOLUTE_S)
    shopper = logged_in_shopper("jwt")
    login_at = RefreshToken(shopper.refresh)[LOGIN_AT_CLAIM]
    assert login_at == int(clock.now) == AccessToken(shopper.access)[LOGIN_AT_CLAIM]
    clock.advance(ABSOLUTE_S - 60)
    assert refreshed(shopper)  # rotated: simplejwt keeps the claim, and copies it
    assert RefreshToken(shopper.refresh)[LOGIN_AT_CLAIM] == login_at
    assert AccessToken(shopper.access)[LOGIN_AT_CLAIM] == login_at
    clock.advance(61)
    assert not refreshed(shopper)


def test_the_pages_end_a_login_at_the_absolute_limit(
    mode: str, demo_user, with_timeouts, clock: Clock
) -> None:
    with_timeouts(absolute=ABSOLUTE_S)
    client = browser()
    log_in(client)  # jwt: token cookies, with the login's time in them
    assert "logged in as <strong>alice</strong>" in client.get("/cart/").content.decode()
    clock.advance(ABSOLUTE_S + 1)
    assert "anonymous" in client.get("/cart/").content.decode()
    assert "anonymous" in client.get("/").content.decode()


def test_a_login_from_before_the_limit_was_set_is_over(mode: str, demo_user, with_timeouts) -> None:
    shopper = logged_in_shopper(mode)  # no time recorded: no limit then
    with_timeouts(absolute=ABSOLUTE_S)
    assert not logged_in(copy_of(shopper))  # a new client: one with the limit's middleware
