"""Fixtures: a real Redis, real memcached nodes and a real replicated Valkey for the whole
run, and a shop switched into one mode per test."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest
from django.core.cache import caches

from sessions_lab.modes import MODE_NAMES, get_mode
from tests.memcached_server import memcached_servers
from tests.redis_server import redis_server
from tests.shoppers import PASSWORD, Shopper
from tests.valkey_replication import Replication, valkey_replication


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


@pytest.fixture(scope="session")
def replication(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replication]:
    """A Valkey primary, two replicas and three Sentinels for the whole run."""
    with valkey_replication(tmp_path_factory.mktemp("replication")) as topology:
        yield topology


def apply_mode(
    settings,
    name: str,
    redis_url: str,
    memcached: str = "",
    replication: Mapping[str, str] | None = None,
) -> None:
    """Switch the running shop into mode ``name``, as SESSION_MODE=name would at start-up
    (``memcached``: its ``MEMCACHED_SERVERS``, where the mode uses them; ``replication``:
    the Sentinels and replica of ``Replication.env``)."""
    env = {"REDIS_URL": redis_url, "MEMCACHED_SERVERS": memcached, **(replication or {})}
    for key, value in get_mode(name).settings(env).items():
        setattr(settings, key, value)


@pytest.fixture
def use_mode(settings, redis_url: str, request: pytest.FixtureRequest):
    """Call with a mode name to switch the shop into it; cleans every session store after.
    The memcached nodes and the replicated Valkey start with the first test of a mode that
    uses them."""
    replicated: list[Replication] = []

    def switch(name: str) -> str:
        mode = get_mode(name)
        memcached = request.getfixturevalue("memcached_nodes") if mode.uses_memcached else ""
        env = None
        if mode.uses_replication:
            replicated.append(request.getfixturevalue("replication"))
            env = replicated[-1].env()
        apply_mode(settings, name, redis_url, memcached, env)
        return name

    yield switch
    if "sessions" in settings.CACHES:
        caches["sessions"].clear()
    if replicated:
        replicated[0].flush()  # the sessions live on the primary, not in a cache
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
