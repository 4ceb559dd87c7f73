"""The dashboard's kill/start endpoints act only for its own page, on this machine.

No cluster here: a real ``Dashboard`` serves over real HTTP with a stand-in
for the supervisor that records what it is asked to do, so every refusal is
checked for "nothing was done" too. The peer-address check is exercised by
calling ``guard.refusal`` with a foreign address: the server binds 127.0.0.1
only (asserted below), so no request from another address can reach it to
test that path over the network.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sessions_lab.cluster.config import LabConfig, RunFolder
from sessions_lab.cluster.control import SIGNALS
from sessions_lab.cluster.control import SIGNALS as CLI_SIGNALS
from sessions_lab.cluster.network import free_port
from sessions_lab.dashboard import Dashboard
from sessions_lab.dashboard.guard import (
    TOKEN_HEADER,
    is_loopback_host,
    is_loopback_peer,
    refusal,
)


class StandInSupervisor:
    """What the dashboard needs of the supervisor: its state, and its request handling."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def snapshot(self) -> dict[str, Any]:
        return {
            "phase": "ready",
            "processes": [
                {"name": "app2", "role": "app", "pid": 4242, "port": 8102, "status": "running",
                 "healthy": True, "drained": False, "exit": None, "exits": []},
            ],
        }  # fmt: skip

    def reply_to(self, request: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(request)
        return {"ok": True, "message": f"{request['target']} killed (SIG{request.get('signal')})"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Dashboard, StandInSupervisor, int]]:
    run = RunFolder(tmp_path / "run")
    run.create()
    config = LabConfig(
        mode="redis", instances=3, affinity="none", db="sqlite", port=free_port(),
        redis_persistence="none", app_ports=[8101, 8102, 8103],
    )  # fmt: skip
    supervisor = StandInSupervisor()
    dashboard = Dashboard(run, config, supervisor.snapshot, supervisor.reply_to)
    port = dashboard.start(free_port())
    try:
        yield dashboard, supervisor, port
    finally:
        dashboard.stop()


def call(
    port: int, method: str, path: str, headers: dict[str, str], body: Any = None
) -> tuple[int, dict[str, Any] | str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        text = response.read().decode()
    finally:
        connection.close()
    if response.getheader("Content-Type", "").startswith("application/json"):
        return response.status, json.loads(text)
    return response.status, text


def page_token(port: int) -> str:
    status, page = call(port, "GET", "/", {"Host": f"127.0.0.1:{port}"})
    assert status == 200 and isinstance(page, str)
    marker = '<meta name="dashboard-token" content="'
    return page.split(marker, 1)[1].split('"', 1)[0]


def test_the_dashboard_listens_on_loopback_only(served) -> None:
    dashboard, _, _ = served
    assert dashboard.server.server_address[0] == "127.0.0.1"


def test_the_page_carries_the_token_that_kill_needs(served) -> None:
    dashboard, supervisor, port = served
    token = page_token(port)
    assert token == dashboard.token
    status, reply = call(
        port, "POST", "/api/kill",
        {"Host": f"127.0.0.1:{port}", TOKEN_HEADER: token, "Origin": f"http://127.0.0.1:{port}"},
        {"target": "app2", "signal": "TERM"},
    )  # fmt: skip
    assert status == 200 and reply["ok"], reply
    assert supervisor.requests == [{"action": "kill", "target": "app2", "signal": "TERM"}]


@pytest.mark.parametrize("path", ["/api/kill", "/api/start"])
@pytest.mark.parametrize(
    ("case", "headers"),
    [
        ("no token", {}),
        ("wrong token", {TOKEN_HEADER: "not-the-token"}),
        ("right token, foreign Host (DNS rebinding)", {"Host": "evil.example:{port}"}),
        ("right token, loopback-looking name", {"Host": "127.0.0.1.evil.example"}),
        ("right token, foreign Origin", {"Origin": "http://evil.example"}),
        ("right token, sandboxed frame", {"Origin": "null"}),
    ],
)
def test_actions_are_refused_without_the_token_or_from_elsewhere(
    served, path: str, case: str, headers: dict[str, str]
) -> None:
    _, supervisor, port = served
    sent = {"Host": f"127.0.0.1:{port}"}
    if case.startswith("right token"):
        sent[TOKEN_HEADER] = page_token(port)
    sent.update({name: value.format(port=port) for name, value in headers.items()})
    status, reply = call(port, "POST", path, sent, {"target": "app2", "signal": "KILL"})
    assert status == 403, (case, reply)
    assert isinstance(reply, dict) and reply["ok"] is False and reply["error"]
    assert supervisor.requests == [], f"{case}: the supervisor was asked to act"


def test_a_foreign_host_can_read_neither_the_page_nor_the_state(served) -> None:
    dashboard, _, port = served
    for path in ("/", "/api/state"):
        status, reply = call(port, "GET", path, {"Host": f"evil.example:{port}"})
        assert status == 403
        assert dashboard.token not in json.dumps(reply)


def test_actions_are_post_only(served) -> None:
    _, supervisor, port = served
    status, _ = call(port, "GET", "/api/kill?target=app2", {"Host": f"127.0.0.1:{port}"})
    assert status == 405
    assert supervisor.requests == []


def test_a_signal_the_cli_does_not_offer_is_refused(served) -> None:
    _, supervisor, port = served
    headers = {"Host": f"localhost:{port}", TOKEN_HEADER: page_token(port)}
    status, reply = call(port, "POST", "/api/kill", headers, {"target": "app2", "signal": "HUP"})
    assert status == 400, reply
    status, reply = call(port, "POST", "/api/start", headers, {"target": "nope"})
    assert status == 400, reply
    assert supervisor.requests == []
    assert SIGNALS == CLI_SIGNALS


def test_the_peer_address_must_be_loopback() -> None:
    token = "t" * 43
    headers = {"Host": "127.0.0.1:9080", TOKEN_HEADER: token}
    assert refusal("127.0.0.1", headers, token) is None
    for peer in ("192.168.1.20", "10.0.0.7", "::ffff:10.0.0.7", "2001:db8::1", "", "garbage"):
        reason = refusal(peer, headers, token)
        assert reason and "loopback" in reason, peer
    for peer in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"):
        assert is_loopback_peer(peer), peer


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1:9080", True),
        ("localhost:9080", True),
        ("localhost", True),
        ("[::1]:9080", True),
        ("evil.example:9080", False),
        ("127.0.0.1.nip.io:9080", False),
        ("localhost.evil.example", False),
        ("127.0.0.1:abc", False),
        ("", False),
    ],
)
def test_which_host_headers_count_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback
