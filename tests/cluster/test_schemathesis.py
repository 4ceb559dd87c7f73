"""schemathesis against one real instance per mode: each mode's /api/schema/ tells the truth.

For each mode the shop runs under gunicorn (its own SQLite
database, migrated, user1..user10: ``tests.loadtests.shop_server``), and
``schemathesis run --checks all`` fuzzes it from the schema that instance
serves, with a fixed seed and a bounded number of examples, in two passes:

- anonymous: the CSRF cookie and header from ``/api/whoami/`` and no login,
  over every operation, login and logout included;
- logged in as user1: the session cookie and CSRF token, or in ``jwt`` mode
  ``Authorization: Bearer``, over every operation but ``/api/session/*`` and
  ``/api/token/*``. Fuzzing logout with the pass's own credential would end the
  session the pass is testing, and a login needs no credential: both are
  fuzzed in the anonymous pass, which is why the logged-in credential is taken
  before either pass runs. Random logins there reach the login throttle (429,
  documented) but never lock user1 out.

Any check failure fails the test and shows schemathesis's report. Its
warnings (an anonymous checkout is only ever 401; a logged-in checkout mostly
meets an empty cart) are what these passes mean to do, and stay warnings.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sessions_lab.modes import MODE_NAMES, get_mode
from sessions_lab.shop_client import Client
from tests.cluster.lab import DEMO_PASSWORD
from tests.loadtests.shop_server import Shop, running_shop

pytestmark = pytest.mark.cluster

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
SEED = 20_250_101
MAX_EXAMPLES = 20
RUN_DEADLINE_S = 75.0
LOGGED_IN_USER = "user1"

CONFIG = """
[generation]
# Each pass brings its own credential. Left to itself, schemathesis would also
# invent a session cookie and call the server's answer to a stranger's cookie
# (an anonymous visitor, by design) "invalid authentication accepted".
with-security-parameters = false
database = "none"

[[operations]]
# Checkout of an empty cart is a 400 (docs/architecture.md): a request that
# is valid by the schema, refused for the cart's state, not its data.
include-path = "/api/checkout/"
# 422: an Idempotency-Key schemathesis sends again with another If-Match.
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "412", "422"]

[[operations]]
# A conditional write whose If-Match names another version of the cart (any
# string the schema allows, an empty one included) is refused with 412: valid
# data, refused for the cart's state.
include-path-regex = "^/api/cart/items/"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "412"]
"""


def credential_headers(shop: Shop, mode: str, *, logged_in: bool) -> dict[str, str]:
    """What a client sends on every call, anonymous or as user1 (``-H`` for schemathesis)."""
    client = Client(shop.url, jwt=get_mode(mode).is_jwt)
    if logged_in:
        client.log_in(LOGGED_IN_USER, DEMO_PASSWORD, cart=False)
    else:
        client.call("GET", "/api/whoami/")  # sets the csrftoken cookie
    if client.access:
        return {"Authorization": f"Bearer {client.access}"}
    # Every cookie (csrftoken, and sessionid once logged in) and the CSRF token they need.
    cookies = "; ".join(f"{cookie.name}={cookie.value}" for cookie in client.jar)
    return {"Cookie": cookies, "X-CSRFToken": client.cookie("csrftoken")}


def fuzz(shop: Shop, folder: Path, headers: dict[str, str], *options: str) -> str:
    """Run schemathesis against ``shop``; fails the test on any failed check, with its report."""
    config = folder / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(SCHEMATHESIS), "--config-file", str(config), "--no-color",
        "run", f"{shop.url}/api/schema/?format=json",
        "--checks", "all",
        "--seed", str(SEED),
        "--max-examples", str(MAX_EXAMPLES),
        *options,
    ]  # fmt: skip
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    # In the run's own folder: anything schemathesis writes stays out of the work tree.
    run = subprocess.run(
        command, cwd=folder, capture_output=True, text=True, timeout=RUN_DEADLINE_S, check=False
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    assert re.search(r"\d+ generated, \d+ passed", report), report
    return report


def summary(report: str) -> str:
    """schemathesis's closing figures, e.g. ``341 generated, 341 passed, 12 skipped ... in 8.5s``."""
    counts = re.findall(r"^\s*(\d+ generated, .*)$", report, re.MULTILINE)
    took = re.findall(r"^=+ .* in ([\d.]+s) =+$", report, re.MULTILINE)
    return f"{counts[-1] if counts else '?'} in {took[-1] if took else '?'}"


@pytest.mark.timeout(150)
@pytest.mark.parametrize("mode", MODE_NAMES)
def test_the_schema_each_mode_serves_survives_schemathesis(
    mode: str, tmp_path: Path, redis_url: str, request: pytest.FixtureRequest
) -> None:
    env = {"REDIS_URL": redis_url}
    if get_mode(mode).uses_memcached:
        env["MEMCACHED_SERVERS"] = request.getfixturevalue("memcached_nodes")
    if get_mode(mode).uses_replication:
        env.update(request.getfixturevalue("replication").env())
    with running_shop(mode, tmp_path, extra_env=env) as shop:
        logged_in = credential_headers(shop, mode, logged_in=True)
        anonymous = credential_headers(shop, mode, logged_in=False)
        started = time.monotonic()
        reports = {
            "anonymous": fuzz(shop, tmp_path, anonymous),
            "logged in": fuzz(
                shop, tmp_path, logged_in, "--exclude-path-regex", "^/api/(session|token)/"
            ),
        }
        # The fuzzing did not log user1 out: the second pass ran logged in to its end.
        client = Client(shop.url, jwt=get_mode(mode).is_jwt)
        if "Authorization" in logged_in:
            client.access = logged_in["Authorization"].removeprefix("Bearer ")
        else:
            for cookie in logged_in["Cookie"].split("; "):
                client.set_cookie(*cookie.split("=", 1))
        status, whoami = client.call("GET", "/api/whoami/")
        assert (status, whoami["username"]) == (200, LOGGED_IN_USER)
    took = time.monotonic() - started
    print(f"\n{mode}: " + "; ".join(f"{name}: {summary(r)}" for name, r in reports.items()))
    print(f"{mode}: both passes in {took:.1f}s")
