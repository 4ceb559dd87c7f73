"""Reading wrk's answer, and combining interleaved rounds into one figure per page."""

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
    script = wrk.lua_script("PUT", [{"Cookie": 'a="1"'}, {"Cookie": "b=2"}], '{"quantity": 3}')
    assert '["Cookie"] = "a=\\"1\\""' in script
    assert "n = n % #sets + 1" in script
    assert 'wrk.format("PUT", nil, sets[n], "{\\"quantity\\": 3}")' in script
