"""How the bench's kill measurement tells a cut-off answer from no answer (``bench.kill.attempt``),
and sends a failed checkout again with its key (``bench.kill.check_out``)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sessions_lab.bench.kill import CHECKOUT_ATTEMPTS, attempt, check_out
from sessions_lab.shop_client import Client

ORDER = {"order": 42, "total": "9.50"}  # the body of the 201 below

ANSWERS = {
    # the dying instance had sent the header and part of the body
    "cut off": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 80\r\n\r\n{",
    "closed unanswered": b"",  # it died before answering
    "nginx gave up": b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n",
    "answered": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    "ordered": b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 30\r\n\r\n"
    b'{"order": 42, "total": "9.50"}',
}


def read_request(connection: socket.socket) -> bytes:
    """Read one whole request, body included: closing a socket with unread data
    sends a reset, and the client would see that instead of the answer. Its head."""
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
    return head


@contextmanager
def answers(*answers: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """A server on 127.0.0.1 that reads a request, sends the next of ``answers`` and hangs
    up, once for each; the heads of the requests it read."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    heads: list[bytes] = []

    def serve() -> None:
        with listener:
            for answer in answers:
                with listener.accept()[0] as connection:
                    heads.append(read_request(connection))
                    connection.sendall(answer)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", heads
    finally:
        server.join(timeout=10)


@contextmanager
def one_answer(answer: bytes) -> Iterator[str]:
    """A server on 127.0.0.1 that reads one request, sends ``answer`` and hangs up."""
    with answers(answer) as (url, _):
        yield url


def keys_sent(heads: list[bytes]) -> list[bytes]:
    return [
        line.split(b":", 1)[1].strip()
        for head in heads
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"idempotency-key:")
    ]


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


@pytest.mark.parametrize(
    ("sent", "outcome"),
    [
        (["ordered"], ([(201, False)], ORDER)),
        (["cut off", "ordered"], ([(0, True), (201, False)], ORDER)),
        (["closed unanswered", "nginx gave up", "ordered"], ([(0, False), (502, False), (201, False)], ORDER)),
        (["cut off", "cut off", "nginx gave up"], ([(0, True), (0, True), (502, False)], None)),
    ],
    ids=["first time", "after a cut-off answer", "at the last attempt", "never"],
)  # fmt: skip
def test_a_failed_checkout_is_sent_again_with_the_same_key(sent: list[str], outcome) -> None:
    with answers(*(ANSWERS[name] for name in sent)) as (url, heads):
        assert check_out(Client(url, jwt=True, access="token"), "key-1") == outcome
    assert len(sent) <= CHECKOUT_ATTEMPTS
    assert keys_sent(heads) == [b"key-1"] * len(sent)
    assert all(head.startswith(b"POST /api/checkout/ ") for head in heads)
