"""Fixtures: a real Redis and real memcached nodes for the whole run, and a shop switched
into one mode per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import caches

from sessions_lab.modes import MODE_NAMES, get_mode
from tests.memcached_server import memcached_servers
from tests.redis_server import redis_server
from tests.shoppers import PASSWORD, Shopper


@pytest.fixture(autouse=True)
def forget_what_this_process_remembers() -> Iterator[None]:
    """Each test starts with no verified cookies or tokens and no price list in memory.

    A signed cookie holds only its data and the second it was signed, so two
    tests can make the very same cookie; and a rolled-back test sends no
    signal to clear the price list it changed.
    """
    from shop import verified
    from shop.services import PRICES

    yield
    verified.forget_everything()
    PRICES.clear()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def memcached_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Three memcached nodes for the whole run, as ``MEMCACHED_SERVERS`` lists them."""
    with memcached_servers(tmp_path_factory.mktemp("memcached")) as servers:
        yield servers


def apply_mode(settings, name: str, redis_url: str, memcached: str = "") -> None:
    """Switch the running shop into mode ``name``, as SESSION_MODE=name would at start-up
    (``memcached``: its ``MEMCACHED_SERVERS``, where the mode uses them)."""
    env = {"REDIS_URL": redis_url, "MEMCACHED_SERVERS": memcached}
    for key, value in get_mode(name).settings(env).items():
        setattr(settings, key, value)


@pytest.fixture
def use_mode(settings, redis_url: str, request: pytest.FixtureRequest):
    """Call with a mode name to switch the shop into it; cleans every session store after.
    The memcached nodes start with the first test of a mode that uses them."""

    def switch(name: str) -> str:
        memcached = (
            request.getfixturevalue("memcached_nodes") if get_mode(name).uses_memcached else ""
        )
        apply_mode(settings, name, redis_url, memcached)
        return name

    yield switch
    if "sessions" in settings.CACHES:
        caches["sessions"].clear()
    caches.close_all()


@pytest.fixture(params=MODE_NAMES)
def mode(request: pytest.FixtureRequest, use_mode) -> str:
    """Each test using this runs once per mode, like Django's SessionTestsMixin per backend."""
    return use_mode(request.param)


SESSION_MODES = [name for name in MODE_NAMES if not get_mode(name).is_jwt]


@pytest.fixture(params=SESSION_MODES)
def session_shopper(request: pytest.FixtureRequest, use_mode) -> Shopper:
    """A shopper in each of the modes that keep a server or cookie session."""
    return Shopper(use_mode(request.param))


@pytest.fixture
def shopper(mode: str) -> Shopper:
    """A client of the JSON API that logs in the way ``mode`` does."""
    return Shopper(mode)


@pytest.fixture
def demo_user(django_user_model):
    return django_user_model.objects.create_user(username="alice", password=PASSWORD)
