"""Conditional cart writes (``--conditional-writes``): the version kept, the If-Match sent, a 412.

The bookkeeping is tested in this process; the journeys that use it run in
real Locust, against a stand-in shop that already speaks the ETag contract
(and moves a cart's version now and then, as a late write would) and
against the real shop, whatever it answers today.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from loadtests.cart_versions import CartVersion, is_cart_write
from loadtests.session_checks import Answer, Failure
from tests.loadtests.etag_shop import EtagShop, running_etag_shop
from tests.loadtests.locust_runs import (
    assert_healthy_run,
    failure_count,
    request_count,
    run_locust_until,
)
from tests.loadtests.shop_server import PROJECT_ROOT, Shop, running_shop

SHOPPERS = 3  # of 4 users, at the 3:1 weights of the locustfile
CART = json.dumps({"items": [{"product": 3, "quantity": 2}], "total": "25.00"})
EMPTY = json.dumps({"items": [], "total": "0.00"})
ITEM = "/api/cart/items/3/"
# gunicorn logs the If-Match each request arrived with ("-": none), so the test can see it.
ACCESS_LOG_ARGS = ("--access-logformat", "%({if-match}i)s %(m)s %(U)s")


# ------------------------------------------------------------ the bookkeeping
def test_only_cart_writes_and_checkout_are_conditional() -> None:
    assert is_cart_write("PUT", ITEM) and is_cart_write("DELETE", ITEM)
    assert is_cart_write("POST", "/api/checkout/")
    assert not is_cart_write("GET", "/api/cart/")
    assert not is_cart_write("POST", "/api/session/login/")


def test_a_write_names_the_version_of_the_last_cart_answer() -> None:
    version = CartVersion()
    assert version.if_match("PUT", ITEM) == {}  # nothing seen yet: unconditional

    version.heard("GET", "/api/cart/", Answer(200, CART, etag='"cart-4"'), None, conditional=False)
    assert version.if_match("PUT", ITEM) == {"If-Match": '"cart-4"'}
    assert version.if_match("GET", "/api/cart/") == {}
    assert version.cart == {3: 2}

    version.heard("PUT", ITEM, Answer(200, EMPTY, etag='"cart-5"'), None, conditional=True)
    assert version.if_match("DELETE", ITEM) == {"If-Match": '"cart-5"'}
    checkout = Answer(201, '{"order": 1, "total": "0.00"}', etag='"cart-6"')
    version.heard("POST", "/api/checkout/", checkout, None, conditional=True)
    assert (version.etag, version.cart) == ('"cart-6"', {})

    # Another request's answer says nothing about the cart's version.
    version.heard("GET", "/api/whoami/", Answer(200, "{}", etag='"other"'), None, conditional=False)
    assert version.etag == '"cart-6"'


@pytest.mark.parametrize(
    ("answer", "failure"),
    [
        (Answer(0), Failure.CONNECTION),
        (Answer(502, "<html>Bad Gateway</html>"), Failure.HTTP_5XX),
        (Answer(200, EMPTY, etag='"cart-5"'), Failure.CART_MISMATCH),
        (Answer(401, "{}"), None),  # excused (an expired token): the write did not happen
        (Answer(200, CART), None),  # a shop that keeps no version
    ],
)
def test_a_write_of_unknown_outcome_forgets_the_version(
    answer: Answer, failure: Failure | None
) -> None:
    version = CartVersion(etag='"cart-4"', cart={3: 2})
    assert version.heard("PUT", ITEM, answer, failure, conditional=True) is False
    assert (version.etag, version.cart) == ("", None)
    assert version.if_match("PUT", ITEM) == {}


def test_a_weak_etag_is_never_sent_as_if_match() -> None:
    version = CartVersion()
    version.heard("GET", "/api/cart/", Answer(200, CART, etag='W/"abc"'), None, conditional=False)
    assert version.if_match("PUT", ITEM) == {}


def test_a_412_to_our_if_match_is_a_conflict_that_remembers_the_cart_it_found() -> None:
    version = CartVersion(etag='"cart-4"', cart={3: 2})
    refused = Answer(412, '{"detail": "The cart has changed."}', etag='"cart-5"')

    assert version.heard("PUT", ITEM, refused, None, conditional=True) is True
    assert version.etag == '"cart-5"'
    assert version.cart is None
    # The read that follows may show the cart the write found, or the shopper's own change.
    assert version.could_be({3: 2}) is True
    assert version.could_be({}) is False
    # A 412 to a write that named no version is no conflict of ours (it is judged unexpected).
    assert CartVersion().heard("PUT", ITEM, refused, Failure.UNEXPECTED, conditional=False) is False


def test_an_answer_carries_the_etag_header() -> None:
    assert Answer(200).etag == ""
    # shop_user imports Locust (and gevent's patching), so it is read in a process of its own.
    probe = (
        "import json, types\n"
        "from loadtests.shop_user import _answer_of\n"
        "headers = {'ETag': '\"cart-7\"', 'X-Served-By': 'app2'}\n"
        "response = types.SimpleNamespace(status_code=200, headers=headers, text='{}')\n"
        "answer = _answer_of(response)\n"
        "print(json.dumps([answer.etag, answer.served_by]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert json.loads(out.splitlines()[-1]) == ['"cart-7"', "app2"]


def test_the_bookkeeping_can_be_used_without_importing_locust() -> None:
    probe = "import sys, loadtests.cart_versions; sys.exit('locust' in sys.modules or 'gevent' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, timeout=30).returncode == 0
    )


# ------------------------------------------------------------ a shop that keeps versions
@pytest.fixture
def etag_shop() -> Iterator[EtagShop]:
    with running_etag_shop(conflict_every=7) as shop:
        yield shop


def test_conditional_shoppers_name_the_last_version_and_repair_each_conflict(
    etag_shop: EtagShop, tmp_path: Path
) -> None:
    counts = etag_shop.counts
    run = run_locust_until(
        etag_shop.url,
        tmp_path,
        lambda: counts["refused"] >= 3 and request_count(tmp_path) > 80,
        extra=("--conditional-writes",),
    )

    # A 412 is no failure: each one was repaired before any cart was checked again.
    assert_healthy_run(run, "jwt")
    # Every write named a version, and only the versions the shop moved were refused:
    # each If-Match was the ETag of the last cart answer.
    assert counts["conditional"] == counts["writes"] > 0, counts
    assert counts["refused"] == counts["moved"] >= 3, counts
    conflicts = sum(record["conflicts"] for record in run.users)
    # A 412 in flight when the run stopped reached no shopper.
    assert counts["refused"] - SHOPPERS <= conflicts <= counts["refused"], counts
    assert all(record["conflicts"] == 0 for record in run.users if record["kind"] == "anonymous")
    # A conflict costs one cart read to repair it, reported as a success.
    assert int(run.stats()["GET", "/api/cart/"]["Request Count"]) >= SHOPPERS + conflicts


def test_without_the_option_no_write_is_conditional(etag_shop: EtagShop, tmp_path: Path) -> None:
    counts = etag_shop.counts
    run = run_locust_until(
        etag_shop.url, tmp_path, lambda: counts["writes"] >= 10 and request_count(tmp_path) > 60
    )

    assert_healthy_run(run, "jwt")
    assert counts["conditional"] == counts["refused"] == 0, counts
    assert all(record["conflicts"] == 0 for record in run.users)


def test_a_cart_lost_behind_a_conflict_is_still_counted_as_lost(tmp_path: Path) -> None:
    with running_etag_shop(conflict_every=5, lose_carts=True) as shop:
        run = run_locust_until(
            shop.url,
            tmp_path,
            lambda: failure_count(tmp_path) >= 2,
            extra=("--conditional-writes",),
        )

    assert run.returncode == 1, run.log  # Locust's own code for "some requests failed"
    failures = run.failures()
    assert failures["cart_mismatch"] >= 2, failures
    assert sum(failures.values()) == failures["cart_mismatch"], failures
    for record in run.users:
        # Found by the read after the 412, once per lost cart: never more than the conflicts.
        assert record["losses"]["cart_mismatch"] <= record["conflicts"], record


# ------------------------------------------------------------ the real shop
@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    folder = tmp_path_factory.mktemp("shop-conditional")
    access_log = ("--access-logfile", str(folder / "access.log"))
    with running_shop("db", folder, gunicorn_args=(*access_log, *ACCESS_LOG_ARGS)) as shop:
        yield shop


def cart_etag(url: str) -> str:
    """The ETag of an anonymous cart read: empty while the shop keeps no cart version."""
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    try:
        connection.request("GET", "/api/cart/")
        response = connection.getresponse()
        response.read()
        return response.getheader("ETag", "") or ""
    finally:
        connection.close()


def test_the_real_shop_with_conditional_writes(shop: Shop, tmp_path: Path) -> None:
    logins = lambda: request_count(tmp_path, "POST", "/api/session/login/")  # noqa: E731
    run = run_locust_until(
        shop.url,
        tmp_path,
        lambda: logins() >= SHOPPERS and request_count(tmp_path) > 80,
        extra=("--conditional-writes",),
    )

    assert_healthy_run(run, "session")
    assert all(record["conflicts"] == 0 for record in run.users)  # nothing moved the carts
    lines = (shop.folder / "access.log").read_text().splitlines()
    writes = [line for line in lines if line.split(" ")[1] in {"PUT", "DELETE", "POST"}]
    if_matches = {line.split(" ")[0] for line in writes if "/api/cart/items/" in line}
    if cart_etag(shop.url):
        # The shop keeps cart versions: the shoppers name them (gunicorn escapes the quotes).
        assert any(re.fullmatch(r'\\"cart-\d+\\"', value) for value in if_matches), if_matches
    else:
        # Not yet: no ETag seen, so no If-Match sent, and the run is today's.
        assert if_matches == {"-"}, if_matches
