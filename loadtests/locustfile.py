"""Shoppers for the sessions lab: they shop like people and check their session after every step.

Run it by hand against any shop (web UI on http://127.0.0.1:8089)::

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8080

or headless, as the lab's experiment runner does::

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8080 --headless \\
        -u 30 -r 10 -t 40s --demo-users 30 --csv results/db/locust \\
        --users-out results/db/users.jsonl --timeline-out results/db/timeline.jsonl \\
        --failures-out results/db/failures.jsonl

Two kinds of user, three to one: ``Shopper`` logs in once as its own demo
user and shops (a cookie session with CSRF tokens, or a bearer token in
``jwt`` mode: it reads the mode from the shop's ``X-Session-Mode`` header);
``AnonymousBrowser`` looks around and, where the mode allows, fills an
anonymous cart. Name one on the command line to run only that kind.

Every failure is one of ``logged_out``, ``cart_mismatch`` (the session was
lost), ``csrf``, ``http_5xx``, ``connection`` (the request was not served),
or ``unexpected`` (a bug: should never appear). Exit codes: 0 nothing
failed, 1 some request failed (Locust's own rule), 3 no request got any
HTTP answer at all (the run measured nothing).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from locust import events

# `locust -f path/to/loadtests/locustfile.py` puts the file's folder on the path,
# not the project's; the users import each other as `loadtests.*`.
PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)
if PROJECT_ROOT not in sys.path:
    sys.path.insert(0, PROJECT_ROOT)

import loadtests.distributed  # noqa: E402, F401 - its listeners: --master and --worker
from loadtests.anonymous_browsing import AnonymousBrowser  # noqa: E402
from loadtests.shopper import DEFAULT_DEMO_PASSWORD, DEFAULT_DEMO_USERS, Shopper  # noqa: E402

__all__ = ["AnonymousBrowser", "Shopper"]


@events.init_command_line_parser.add_listener
def _lab_options(parser: Any) -> None:
    parser.add_argument(
        "--session-mode",
        default="",
        env_var="LOCUST_SESSION_MODE",
        help="The shop's session mode (sticky, redis, db, cached_db, cookie, jwt); "
        "empty: read it from the X-Session-Mode header of the first answer",
    )
    parser.add_argument(
        "--demo-users",
        type=int,
        default=DEFAULT_DEMO_USERS,
        env_var="LOCUST_DEMO_USERS",
        help="How many demo accounts user1..userN the shop has; shoppers wrap after N",
    )
    parser.add_argument(
        "--demo-password",
        default=DEFAULT_DEMO_PASSWORD,
        env_var="DEMO_PASSWORD",
        is_secret=True,
        help="The demo accounts' password",
    )
    parser.add_argument(
        "--client-ip-per-user",
        action="store_true",
        default=False,
        env_var="LOCUST_CLIENT_IP_PER_USER",
        help="Send X-Forwarded-For: 10.77.x.y, one address per user (for --affinity ip)",
    )
    parser.add_argument(
        "--think-time",
        type=float,
        default=1.0,
        env_var="LOCUST_THINK_TIME",
        help="Longest pause between two steps of a user, in seconds (uniform from 0)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        env_var="LOCUST_SEED",
        help="Seed each user's choices, so a run can be repeated step for step",
    )
    parser.add_argument(
        "--conditional-writes",
        action="store_true",
        default=False,
        env_var="LOCUST_CONDITIONAL_WRITES",
        help="Send If-Match with the cart's last ETag on every cart write and checkout; "
        "a 412 (the cart changed meanwhile) makes the shopper read the cart again and "
        "re-apply its own change",
    )
    parser.add_argument(
        "--tabs",
        type=int,
        choices=(1, 2),
        default=1,
        env_var="LOCUST_TABS",
        help="2: each shopper changes its cart from two tabs at the same moment, and counts "
        "the acknowledged changes the cart then lacks (lost updates)",
    )
    parser.add_argument(
        "--idle-pause",
        type=float,
        default=0.0,
        env_var="LOCUST_IDLE_PAUSE",
        help="Every third shopper stops for this many seconds once, after a few steps, then "
        "shops on (the idle-timeout scenario: longer than the shop's idle limit); 0: nobody",
    )
    parser.add_argument(
        "--users-out",
        default="",
        env_var="LOCUST_USERS_OUT",
        help="Write one JSON line per user at test stop: who served it, what it lost, when",
    )
    parser.add_argument(
        "--failures-out",
        default="",
        env_var="LOCUST_FAILURES_OUT",
        help="Write one JSON line per failed request at test stop: when, what, "
        "which instance answered, nginx's request id",
    )
    parser.add_argument(
        "--totals-out",
        default="",
        env_var="LOCUST_TOTALS_OUT",
        help="Write Locust's totals as JSON when it quits: requests, failures, rps, p50/p95 "
        "(its stats CSV, rewritten once a second, lacks the last second's requests)",
    )
    parser.add_argument(
        "--timeline-out",
        default="",
        env_var="LOCUST_TIMELINE_OUT",
        help="Write one JSON line per second: requests, failures by class, p50/p95",
    )
