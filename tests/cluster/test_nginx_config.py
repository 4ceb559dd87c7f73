"""The rendered nginx configurations: valid for the nginx the lab uses, and saying why."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from sessions_lab.cluster.binaries import find_binary
from sessions_lab.cluster.config import LabConfig, RunFolder
from sessions_lab.cluster.nginx import balancing_for, nginx_argv, write_nginx_conf
from sessions_lab.cluster.templates import render

pytestmark = pytest.mark.cluster


def sticky_config(affinity: str, mode: str = "sticky") -> LabConfig:
    return LabConfig(
        mode=mode,
        instances=3,
        affinity=affinity,
        db="sqlite",
        port=18080,
        redis_persistence="none",
        app_ports=[18101, 18102, 18103],
    )


@pytest.mark.parametrize(
    ("mode", "affinity", "expected"),
    [
        ("redis", "none", "server 127.0.0.1:18103"),
        ("sticky", "cookie", "sticky cookie srv_id path=/ httponly samesite=lax;"),
        ("sticky", "learn", "create=$upstream_cookie_sessionid"),
        ("sticky", "route", "sticky route $cookie_route $arg_route;"),
        ("sticky", "ip", "hash $remote_addr consistent;"),
        ("sticky", "none", "upstream shop"),
    ],
)
def test_every_configuration_passes_nginx_t(
    tmp_path: Path, mode: str, affinity: str, expected: str
) -> None:
    nginx = find_binary("nginx")
    run = RunFolder(tmp_path)
    run.create()
    config = sticky_config(affinity, mode)
    conf = write_nginx_conf(config, run, nginx, config.app_names).read_text()
    assert expected in conf
    checked = subprocess.run(
        nginx_argv(run, nginx, "-t"), capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr


def app1_only_conf(tmp_path: Path) -> str:
    """nginx's configuration for a sticky lab with app1 alone in rotation."""
    run = RunFolder(tmp_path)
    run.create()
    return write_nginx_conf(
        sticky_config("none", "db"), run, find_binary("nginx"), ["app1"]
    ).read_text()


def test_nginx_passes_host_with_port_and_short_timeouts(tmp_path: Path) -> None:
    conf = app1_only_conf(tmp_path)
    assert "proxy_set_header Host $http_host;" in conf  # the browser's, port included
    # The instances log a write answered later than this as a late duplicate.
    assert f"proxy_read_timeout {settings.LATE_WRITE_AFTER_S:.0f}s;" in conf
    assert "proxy_set_header X-Request-Start" in conf
    assert "proxy_next_upstream error timeout http_502;" in conf  # not 503: see the template
    assert "add_header X-Upstream $upstream_addr always;" in conf
    assert "add_header X-Request-ID $request_id always;" in conf  # a shopper records it
    assert "escape=json" in conf
    assert "127.0.0.1:18101" in conf
    assert "127.0.0.1:18102" not in conf  # not in rotation


def test_logins_wait_longer_and_are_re_sent_like_a_get(tmp_path: Path) -> None:
    """The login location: the middleware's LOGIN_PATHS, LOGIN_WAIT_S, re-sent when an instance dies."""
    conf = app1_only_conf(tmp_path)
    pattern = re.search(r"location ~ (\S+) \{([^}]*)\}", conf)
    assert pattern is not None
    regex, block = pattern.groups()
    for path in settings.LOGIN_PATHS:
        assert re.match(regex, path), path
    for path in ("/api/cart/", "/api/checkout/", "/api/token/logout/", "/api/session/logout/"):
        assert not re.match(regex, path), path
    assert f"proxy_read_timeout {settings.LOGIN_WAIT_S:.0f}s;" in block
    assert "non_idempotent" in block


def test_route_cookie_is_set_from_the_answering_instance(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    run.create()
    conf = write_nginx_conf(
        sticky_config("route"), run, find_binary("nginx"), ["app1", "app2"]
    ).read_text()
    assert "server 127.0.0.1:18102 max_fails=1 fail_timeout=5s route=app2;" in conf
    assert "add_header Set-Cookie $lab_route_cookie always;" in conf


@pytest.mark.parametrize("affinity", ["cookie", "learn", "route"])
def test_an_old_nginx_gets_a_cookie_fallback_and_a_message(affinity: str) -> None:
    balancing = balancing_for(sticky_config(affinity), (1, 22, 1))
    assert balancing.template == "cookie_hash.tmpl"
    assert "1.22.1 has no open-source `sticky`" in balancing.notes[0]
    assert ("cannot be shown" in balancing.notes[0]) is (affinity != "cookie")


def test_templates_leave_nginx_variables_alone() -> None:
    text = render(
        "redis.conf.tmpl", bind_address="127.0.0.1", port=1, data_dir="/x", appendonly="no"
    )
    assert "port 1\n" in text
    with pytest.raises(KeyError):
        render("redis.conf.tmpl", port=1)
