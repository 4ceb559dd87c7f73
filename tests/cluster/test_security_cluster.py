"""Security promises that need the real cluster: a shared login limit, nginx's body limit."""

from __future__ import annotations

import pytest
import requests

from tests.cluster.lab import Shopper

pytestmark = pytest.mark.cluster


def test_failed_logins_spread_over_three_instances_still_hit_one_limit(make_lab) -> None:
    lab = make_lab("--mode", "db", "--instances", "3")
    attacker = Shopper(lab, "db")
    attacker.whoami()  # the CSRF cookie, as every client fetches first
    served = set()
    for _ in range(5):  # the per-account limit
        response = attacker.call(
            "POST", "/api/session/login/", {"username": "user3", "password": "guess"}
        )
        assert response.status_code == 401
        served.add(response.headers["X-Served-By"])
    assert len(served) >= 2  # round robin spread the guesses over the instances
    for _ in range(3):  # whichever instance answers next, the limit holds
        right = attacker.call(
            "POST", "/api/session/login/", {"username": "user3", "password": "demo-password"}
        )
        assert right.status_code == 429, right.text
        served.add(right.headers["X-Served-By"])
    assert len(served) == 3
    assert int(right.headers["Retry-After"]) > 0


def test_nginx_refuses_a_body_over_one_megabyte_with_413(make_lab) -> None:
    lab = make_lab("--mode", "cookie", "--instances", "2")
    response = requests.post(
        f"{lab.url}/api/session/login/",
        data=b"{" + b" " * (1024 * 1024 + 10) + b"}",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 413


@pytest.mark.timeout(240)
def test_attack_command_prints_what_each_mode_promises_and_does(tmp_path) -> None:
    from sessions_lab.cluster.network import free_port
    from tests.cluster.lab import Lab

    run_dir, port = tmp_path / "lab", free_port()
    try:
        done = Lab(run_dir, port).cli("attack", "--mode", "all", "--port", str(port), check=False)
    finally:
        Lab(run_dir, port).teardown()
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [
        line for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line
    ]
    table = {(row.split(" | ")[0][2:], row.split(" | ")[1]): row for row in rows[1:]}
    replay = "replay a session cookie after logout"
    for mode in ("sticky", "redis", "db", "cached_db"):
        assert "| anonymous | as promised" in table[mode, replay]
    assert "| logged in | as promised" in table["cookie", replay]
    assert "logged in (until exp" in table["jwt", "replay an access token after logout"]
    assert "| refused (401) | as promised" in table["jwt", "replay a blacklisted refresh token"]
    assert "| refused (401) | as promised" in table["jwt", "use a forged alg:none token"]
    assert "NOT as promised" not in done.stdout
    assert "a signed cookie *is* the session" in done.stdout


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["cookie", "cached_db"])
def test_a_stored_session_is_read_in_clear_and_not_once_encrypted(make_lab, mode: str) -> None:
    from sessions_lab import attack

    copies = ["the cookie"] if mode == "cookie" else ["the Redis value", "the django_session row"]
    for options, promise in (((), attack.READABLE), (("--encrypt-sessions",), attack.UNREADABLE)):
        lab = make_lab("--mode", mode, "--instances", "1", *options)
        try:
            outcome = attack.read_the_session(lab.url, mode, "user1", lab.run_dir)
        finally:
            lab.teardown()
        assert (outcome.expected, outcome.observed) == (promise, promise), outcome
        if promise == attack.UNREADABLE:  # every copy the store holds
            assert all(f"{copy}: a Fernet token" in outcome.detail for copy in copies), outcome
