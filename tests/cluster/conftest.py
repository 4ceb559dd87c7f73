"""Fixtures for tests against a real cluster: labs that are always torn down.

Each lab gets a run folder under pytest's tmp_path and a free nginx port, so
tests never meet a user's ``.lab/`` or port 8080. Teardown runs ``down`` and
then kills by pid whatever ``state.json`` still names, whatever the test did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from sessions_lab.cluster.network import free_port
from tests.cluster.lab import Lab, make_lab  # noqa: F401 - a fixture, shared with tests/dashboard


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: starts real nginx/gunicorn/Redis processes")


@pytest.fixture(scope="module")
def module_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Lab]]:
    """Like ``make_lab``, shared by the tests of one module (one ``up`` per argument set)."""
    labs: dict[tuple[str, ...], Lab] = {}

    def start(*args: str) -> Lab:
        if args not in labs:
            for other in labs.values():  # one cluster at a time: two cores
                other.teardown()
            labs.clear()
            lab = Lab(tmp_path_factory.mktemp("lab"), free_port())
            labs[args] = lab
            lab.up(*args)
        return labs[args]

    yield start
    for lab in labs.values():
        lab.teardown()
