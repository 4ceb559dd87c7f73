"""The Jinja2 templates behind report.html and the dashboard page: escaping and whitespace.

The report's markup is written over many lines but must come out as one, with
every value escaped as ``html.escape`` does; the dashboard page must carry its
token and nonce and nothing of Jinja's syntax. No servers needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sessions_lab.cluster.config import LabConfig, RunFolder
from sessions_lab.dashboard.server import Dashboard
from sessions_lab.experiments.report import html_report
from sessions_lab.experiments.results import FAILURE_CLASSES, not_applicable

HOSTILE = '<script>alert("x")</script> & it\'s'


def one_mode_summary(tmp_path: Path, expected: str) -> dict[str, Any]:
    folder = tmp_path / "sticky"
    folder.mkdir()
    users = [{"user": "user1", "first_instance": "app2", "lost": True}]
    seconds = [
        {"t": t, "requests": 10, "failures_by_class": dict.fromkeys(FAILURE_CLASSES, 0)}
        for t in range(4)
    ]
    seconds[2]["failures_by_class"]["logged_out"] = 1
    (folder / "users.jsonl").write_text("".join(json.dumps(u) + "\n" for u in users))
    (folder / "timeline.jsonl").write_text("".join(json.dumps(s) + "\n" for s in seconds))
    result = not_applicable(expected) | {
        "events": [{"t": 1.0, "action": "kill", "target": "app2", "signal": "KILL"}],
        "requests": 40,
        "users_total": 1,
        "users_lost_session": 1,
        "users_lost_on_faulted_instance": 1,
        "faulted_instance": "app2",
        "verdict": "unexpected",
    }
    return {
        "scenario": "kill-one", "instances": 2, "users": 1, "duration_s": 4, "affinity": "cookie",
        "db": "sqlite", "redis_persistence": "none",
        "modes": {"sticky": result, "cookie": not_applicable()},
    }  # fmt: skip


def test_a_hostile_prediction_is_escaped_as_html_escape_does(tmp_path: Path) -> None:
    page = html_report(one_mode_summary(tmp_path, HOSTILE), tmp_path)
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; it&#x27;s"
    assert f"<td>{escaped}</td>" in page  # the table
    assert f"<p>Predicted: {escaped}.</p>" in page  # the mode's section
    assert "<script" not in page and "&#39;" not in page and "&#34;" not in page


def test_the_report_is_one_line_around_its_verbatim_stylesheet(tmp_path: Path) -> None:
    page = html_report(one_mode_summary(tmp_path, "pinned users lose"), tmp_path)
    before, rest = page.split("<style>\n", 1)
    css, after = rest.split("</style>", 1)
    assert before.startswith("<!doctype html><html lang='en'><head><meta charset='utf-8'><meta")
    assert "\n" not in before and "\n" not in after
    assert css.startswith("body { font: 18px/1.45") and css.endswith(".note { color: #444; }\n")
    assert "{#" not in page and "{{" not in page
    assert after.endswith("</section></body></html>")


def test_the_charts_keep_their_markup(tmp_path: Path) -> None:
    page = html_report(one_mode_summary(tmp_path, "pinned users lose"), tmp_path)
    # The legend's markers, drawn at (9, 9): one decimal for circles, raw numbers in points.
    assert '<li><svg viewBox="0 0 18 18"><circle cx="9.0" cy="9.0" r="5" fill="#D55E00"/>' in page
    assert '<polygon points="9,3 15,9 9,15 3,9" fill="#009E73"/></svg> CSRF refused</li>' in page
    # The fault mark, the verdict's class, the spread bar of the faulted instance.
    assert 'class="event-label">kill app2 KILL</text>' in page
    assert '<td class="verdict-unexpected">unexpected</td></tr>' in page
    assert ">1 user, 1 lost (faulted)</text></svg></section>" in page
    assert page.count('<section id="') == 1  # not applicable modes get no section


def test_the_dashboard_page_carries_its_token_and_nonce(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    run.create()
    config = LabConfig(
        mode="redis", instances=2, affinity="none", db="sqlite", port=8080,
        redis_persistence="none", app_ports=[8101, 8102],
    )  # fmt: skip
    dashboard = Dashboard(run, config, lambda: {}, lambda request: {})  # type: ignore[arg-type,return-value]
    dashboard.token = "t0ken-_A"
    page = dashboard.page("n0nce-_B")
    assert '<meta name="dashboard-token" content="t0ken-_A">' in page
    assert '<script nonce="n0nce-_B">\n"use strict";' in page
    assert page.startswith("<!doctype html>\n<!--") and page.endswith(
        "</script>\n</body>\n</html>\n"
    )
    assert "{{" not in page and "{%" not in page and "{#" not in page
