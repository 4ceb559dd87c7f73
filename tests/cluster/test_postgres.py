"""Done-when 5: `--db postgres` runs the shop's contract flow on the lab's own PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest

from tests.cluster.lab import Shopper

pytestmark = pytest.mark.cluster


@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode", ["db"])
def test_postgres_carries_login_cart_and_checkout(make_lab, mode: str) -> None:
    lab = make_lab("--mode", mode, "--db", "postgres", "--instances", "2")
    postgres = lab.process("postgres")
    assert postgres["status"] == "running" and postgres["healthy"]

    shopper = Shopper(lab, mode)
    shopper.login("user1")
    assert shopper.put_item(1, 2).status_code == 200
    assert shopper.cart() == {1: 2}
    checkout = shopper.call("POST", "/api/checkout/")
    assert checkout.status_code == 201, checkout.text
    assert shopper.cart() == {}
    assert shopper.whoami()["username"] == "user1"
    assert len(set(shopper.served_by)) == 2

    with psycopg.connect(host="127.0.0.1", port=postgres["port"], user="lab", dbname="shop") as db:
        sessions = db.execute("SELECT count(*) FROM django_session").fetchone()[0]
        users = db.execute("SELECT count(*) FROM auth_user").fetchone()[0]
    assert sessions >= 1
    assert users >= 30
