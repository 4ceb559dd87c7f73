"""How the bench's kill measurement tells a cut-off answer from no answer (``bench.run.attempt``)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sessions_lab.bench.run import attempt
from sessions_lab.shop_client import Client

ANSWERS = {
    # the dying instance had sent the header and part of the body
    "cut off": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 80\r\n\r\n{",
    "closed unanswered": b"",  # it died before answering
    "nginx gave up": b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n",
    "answered": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
}


def read_request(connection: socket.socket) -> None:
    """Read one whole request, body included: closing a socket with unread data
    sends a reset, and the client would see that instead of the answer."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536) or b"\r\n\r\n"
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n")
         if line.lower().startswith(b"content-length:")),
        0,
    )  # fmt: skip
    while len(body) < length and (more := connection.recv(65536)):
        body += more


@contextmanager
def one_answer(answer: bytes) -> Iterator[str]:
    """A server on 127.0.0.1 that reads one request, sends ``answer`` and hangs up."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        with listener, listener.accept()[0] as connection:
            read_request(connection)
            connection.sendall(answer)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.join(timeout=10)


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        ("cut off", (0, True)),
        ("closed unanswered", (0, False)),
        ("nginx gave up", (502, False)),
        ("answered", (200, False)),
    ],
)
@pytest.mark.parametrize("write", [False, True], ids=["GET", "PUT"])
def test_an_answer_cut_off_is_told_from_no_answer(answer: str, outcome, write: bool) -> None:
    with one_answer(ANSWERS[answer]) as url:
        assert attempt(Client(url, jwt=True, access="token"), write) == outcome
