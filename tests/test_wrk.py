"""Reading wrk's answer, and combining interleaved rounds into one figure per page."""

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sessions_lab.bench import wrk

OUTPUT = """Running 5s test @ http://127.0.0.1:8080/api/cart/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    14.20ms   10.11ms 120.00ms   80.00%
  Latency Distribution
     50%   12.50ms
     75%   18.00ms
     90%   25.00ms
     99%  640.00us
  10500 requests in 5.00s, 3.10MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   2100.50
Transfer/sec:    620.00KB
"""


def test_parse_reads_rate_latency_and_every_kind_of_error() -> None:
    figure = wrk.parse(OUTPUT)
    assert figure == wrk.Figure(rps=2100.5, p50_ms=12.5, p99_ms=0.64, requests=10500, errors=7)


def test_rounds_combine_to_mean_rate_median_p50_and_worst_p99() -> None:
    rounds = [
        wrk.Figure(rps=1000.0, p50_ms=10.0, p99_ms=50.0, requests=5000, errors=0),
        wrk.Figure(rps=1300.0, p50_ms=8.0, p99_ms=90.0, requests=6500, errors=1),
        wrk.Figure(rps=1150.0, p50_ms=9.0, p99_ms=40.0, requests=5750, errors=0),
    ]
    assert wrk.combine(rounds) == wrk.Figure(
        rps=1150.0, p50_ms=9.0, p99_ms=90.0, requests=17250, errors=1
    )


def test_the_lua_script_rotates_header_sets_and_escapes_quotes() -> None:
    script = wrk.lua_script(
        "PUT", [{"Cookie": 'a="1"'}, {"Cookie": "b=2"}], ['{"quantity": 3}', '{"quantity": 4}']
    )
    assert '["Cookie"] = "a=\\"1\\""' in script
    assert "n = n % #sets + 1" in script
    assert 'local bodies = {"{\\"quantity\\": 3}", "{\\"quantity\\": 4}"}' in script


class Recorder(BaseHTTPRequestHandler):
    """Answers 200 to anything, keeping each request's user (its Cookie) and body, in order."""

    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        with self.lock:
            self.seen.append((self.headers.get("Cookie", ""), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.timeout(60)
def test_no_user_is_sent_the_same_body_twice_in_a_row_whichever_thread_sends_it() -> None:
    # The bench's write: each write must change the cart, or the shop saves nothing.
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.daemon_threads = True
    Recorder.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        users = [{"Cookie": f"sessionid=user{n}"} for n in range(6)]
        bodies = [json.dumps({"quantity": q}) for q in range(1, 91)]
        figure = wrk.measure(
            f"http://127.0.0.1:{server.server_port}/api/cart/items/7/",
            duration=1, connections=8, method="PUT", headers=users, bodies=bodies,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    by_user: dict[str, list[str]] = {}
    for user, body in list(Recorder.seen):
        by_user.setdefault(user, []).append(body)
    assert figure.requests > 100 and set(by_user) == {u["Cookie"] for u in users}
    for sent in by_user.values():
        assert all(a != b for a, b in itertools.pairwise(sent)), sent[:20]
    # Both threads wrote, each its own half of the bodies.
    quantities = {json.loads(body)["quantity"] % 2 for _, body in Recorder.seen}
    assert quantities == {0, 1}


def test_a_script_without_bodies_sends_none() -> None:
    script = wrk.lua_script("GET", [{}], None)
    assert "local bodies = {}" in script
    assert 'wrk.format("GET", nil, sets[n], body)' in script
