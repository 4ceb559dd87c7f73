"""The load-test tests: a real shop per module, Locust in a process of its own per run."""

import pytest

# The shared checks of a healthy run live in a helper module: let pytest explain their asserts.
pytest.register_assert_rewrite("tests.loadtests.locust_runs")
