"""Done-when 5: `--db postgres` runs the shop's contract flow on the lab's own PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest

from sessions_lab.cluster import postgres
from sessions_lab.cluster.config import RunFolder
from sessions_lab.waiting import wait_until
from tests.cluster.lab import Shopper

pytestmark = pytest.mark.cluster


@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode", ["db", "jwt"])
def test_postgres_carries_login_cart_and_checkout(make_lab, mode: str) -> None:
    lab = make_lab("--mode", mode, "--db", "postgres", "--instances", "2")
    postgres = lab.process("postgres")
    assert postgres["status"] == "running" and postgres["healthy"]

    shopper = Shopper(lab, mode)
    shopper.login("user1")
    assert shopper.put_item(1, 2).status_code == 200
    assert shopper.put_item(2, 1).status_code == 200
    assert shopper.put_item(2, 4).status_code == 200  # a line that exists: updated in place
    assert shopper.call("DELETE", "/api/cart/items/2/").status_code == 200
    assert shopper.cart() == {1: 2}
    read = shopper.call("GET", "/api/cart/").headers["ETag"]
    assert read == '"cart-4"'
    # A write expecting an older version changes nothing (jwt: the rows' compare-and-set).
    stale = shopper.http.put(
        lab.url + "/api/cart/items/1/",
        json={"quantity": 9},
        headers={**_auth(shopper), "If-Match": '"cart-3"'},
        timeout=10,
    )
    assert (stale.status_code, stale.headers["ETag"]) == (412, read)
    assert shopper.cart() == {1: 2}
    checkout = shopper.call("POST", "/api/checkout/")
    assert checkout.status_code == 201, checkout.text
    assert shopper.cart() == {}
    assert shopper.whoami()["username"] == "user1"
    assert len(set(shopper.served_by)) == 2

    with psycopg.connect(host="127.0.0.1", port=postgres["port"], user="lab", dbname="shop") as db:
        sessions = db.execute("SELECT count(*) FROM django_session").fetchone()[0]
        users = db.execute("SELECT count(*) FROM auth_user").fetchone()[0]
    assert users >= 30
    if mode == "db":
        assert sessions >= 1


@pytest.mark.timeout(180)
def test_synchronous_commit_is_off_for_the_block_only_and_reaches_open_connections(
    make_lab,
) -> None:
    lab = make_lab("--mode", "db", "--db", "postgres", "--instances", "1")
    config = RunFolder(lab.run_dir).read_config()
    port = lab.process("postgres")["port"]
    with psycopg.connect(host="127.0.0.1", port=port, user="lab", dbname="shop") as open_one:

        def setting() -> str:
            return open_one.execute("SHOW synchronous_commit").fetchone()[0]

        assert setting() == "on"
        with postgres.synchronous_commit_off(config):
            # A reload is a signal: an open connection applies it before its next command.
            assert wait_until(lambda: setting() == "off", 10)
        assert wait_until(lambda: setting() == "on", 10)
    # The run folder keeps its database for the next lab: nothing of it is left.
    auto_conf = postgres.data_dir(RunFolder(lab.run_dir)) / "postgresql.auto.conf"
    assert "synchronous_commit" not in auto_conf.read_text()
    # A run killed while it was off (nothing reset it): the next `up` starts with it on.
    with psycopg.connect(
        host="127.0.0.1", port=port, user="lab", dbname="shop", autocommit=True
    ) as admin:
        admin.execute("ALTER SYSTEM SET synchronous_commit = off")
    lab.cli("down")
    lab.up("--mode", "db", "--db", "postgres", "--instances", "1")
    port = lab.process("postgres")["port"]
    with psycopg.connect(host="127.0.0.1", port=port, user="lab", dbname="shop") as fresh:
        assert fresh.execute("SHOW synchronous_commit").fetchone()[0] == "on"
    assert "synchronous_commit" not in auto_conf.read_text()


def _auth(shopper: Shopper) -> dict[str, str]:
    if shopper.access:
        return {"Authorization": f"Bearer {shopper.access}"}
    return {"X-CSRFToken": shopper.http.cookies.get("csrftoken", "")}
