"""How a shopper reads an answer it did not fully get: cut off after its status line, or none.

``loadtests.shop_user`` imports Locust (and gevent's patching), so each probe
runs in a process of its own, with a stand-in for Locust's response object.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sessions_lab.paths import PROJECT_ROOT

PROBE = """
import json, types
from loadtests.shop_user import _answer_of
from loadtests.session_checks import SessionCheck, Shows
response = types.SimpleNamespace(**{fields})
answer = _answer_of(response)
failure = SessionCheck().judge(answer, shows=Shows.CART)
print(json.dumps([answer.truncated, answer.error, answer.request_id, failure and failure.value]))
"""


def probe(fields: str) -> list:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(fields=fields)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    return json.loads(out.splitlines()[-1])


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # Locust keeps the body's read error in the request's meta, with an empty body.
        (
            "dict(status_code=201, text='', headers={'X-Request-ID': 'r1'}, "
            "request_meta={'exception': ValueError('Incomplete response.')})",
            [True, "ValueError: Incomplete response.", "r1", "connection"],
        ),
        # A body shorter than its Content-Length, whatever Locust said.
        (
            "dict(status_code=200, text='{\"items\": [', headers={'Content-Length': '40'})",
            [True, "the body ended before its Content-Length", "", "connection"],
        ),
        # No answer at all: the client's own error.
        (
            "dict(status_code=0, text='', headers=None, error=ConnectionRefusedError(111, 'refused'))",
            [False, "ConnectionRefusedError: [Errno 111] refused", "", "connection"],
        ),
        # A whole answer.
        (
            "dict(status_code=200, text='{\"items\": []}', headers={'Content-Length': '13'}, "
            "request_meta={'exception': None})",
            [False, "", "", None],
        ),
    ],
)
def test_an_answer_cut_off_after_its_status_line_is_no_answer(fields: str, expected: list) -> None:
    assert probe(fields) == expected
