"""`docker compose config -q` accepts the deployment in every mode, and can say no."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from pathlib import Path

import pytest

from sessions_lab.cluster import serve
from sessions_lab.cluster.binaries import find_binary
from sessions_lab.cluster.compose_files import (
    affinities_for,
    app_services,
    memcached_services,
    variant_name,
)
from sessions_lab.cluster.memcached import memcached_argv
from sessions_lab.cluster.network import free_port
from sessions_lab.modes import MODE_NAMES
from sessions_lab.waiting import wait_until
from tests.compose.conftest import ComposeRun

CHOICES = [(mode, affinity) for mode in MODE_NAMES for affinity in affinities_for(mode)]


@pytest.mark.parametrize(("mode", "affinity"), CHOICES, ids=[f"{m}-{a}" for m, a in CHOICES])
def test_every_mode_is_a_valid_compose_project(
    compose: ComposeRun, deploy_copy: Path, mode: str, affinity: str
) -> None:
    choice = {"SESSION_MODE": mode, "LAB_AFFINITY": affinity}
    checked = compose(deploy_copy / "docker-compose.yml", "config", "-q", env=choice)
    assert checked.returncode == 0, checked.stderr

    resolved = compose(deploy_copy / "docker-compose.yml", "config", "--format", "json", env=choice)
    services = json.loads(resolved.stdout)["services"]
    # The configuration nginx is told to load exists in the folder it mounts.
    conf = services["nginx"]["command"][-1]
    mount = next(v for v in services["nginx"]["volumes"] if v["target"] == "/etc/nginx/lab")
    assert conf == f"/etc/nginx/lab/{variant_name(mode, affinity)}.conf"
    assert (Path(mount["source"]) / Path(conf).name).is_file()
    assert {services[f"app{n}"]["environment"]["SESSION_MODE"] for n in (1, 2, 3)} == {mode}


@pytest.mark.parametrize("persistence", ["none", "aof"])
def test_redis_persistence_picks_a_rendered_configuration(
    compose: ComposeRun, deploy_copy: Path, persistence: str
) -> None:
    resolved = compose(
        deploy_copy / "docker-compose.yml",
        "config",
        "--format",
        "json",
        env={"LAB_REDIS_PERSISTENCE": persistence},
    )
    redis = json.loads(resolved.stdout)["services"]["redis"]
    conf = (deploy_copy / "redis" / Path(redis["command"][-1]).name).read_text()
    assert f"appendonly {'yes' if persistence == 'aof' else 'no'}\n" in conf


BREAKAGES = {
    "unknown dependency condition": (
        "condition: service_completed_successfully",
        "condition: service_finished",
    ),
    "dependency on a service that does not exist": (
        "    migrate:\n      condition",
        "    migrator:\n      condition",
    ),
    "misspelt service key": ('    entrypoint: ["locust"]', '    entrypointt: ["locust"]'),
    "broken YAML": ("services:\n", "services:\n  - nginx\n"),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_a_broken_copy_fails_the_check(
    compose: ComposeRun, deploy_copy: Path, breakage: str
) -> None:
    old, new = BREAKAGES[breakage]
    compose_file = deploy_copy / "docker-compose.yml"
    text = compose_file.read_text()
    assert old in text, "the breakage no longer applies to docker-compose.yml"
    compose_file.write_text(text.replace(old, new, 1))
    assert compose(compose_file, "config", "-q").returncode != 0


def test_without_the_generated_keys_compose_refuses_to_start(
    compose: ComposeRun, deploy_copy: Path, tmp_path: Path
) -> None:
    example = deploy_copy / ".env.example"
    checked = compose(
        deploy_copy / "docker-compose.yml", "--env-file", str(example), "config", "-q"
    )
    assert checked.returncode != 0
    assert "generate deploy/.env first" in checked.stderr


def test_health_checks_run_on_older_engines_and_cannot_pass_too_early(
    compose: ComposeRun, deploy_copy: Path
) -> None:
    resolved = compose(deploy_copy / "docker-compose.yml", "config", "--format", "json")
    services = json.loads(resolved.stdout)["services"]
    # start_interval makes Compose refuse every Engine before 25 (and Podman 4).
    assert all("start_interval" not in s.get("healthcheck", {}) for s in services.values())
    # Python only (a minimal base has no curl, wget or pgrep), each over TCP.
    for name, service in services.items():
        if name in ("migrate", "locust"):
            continue
        kind = re.sub(r"\d+$", "", name)  # app1 -> app, memcached2 -> memcached
        assert service["healthcheck"]["test"] == [
            "CMD", "python", "-m", "sessions_lab.cluster.serve", "ready", kind
        ]  # fmt: skip


def test_postgres_is_ready_only_when_it_answers_over_tcp(monkeypatch: pytest.MonkeyPatch) -> None:
    # Through the socket pg_isready would also answer a temporary init
    # server, which listens on no port: only TCP says the real server is up.
    from sessions_lab.cluster import serve

    asked: list[list[str]] = []

    def pg_isready(argv: list[str], **_: object) -> object:
        asked.append(argv)
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(serve, "tool", lambda name: Path("/lab") / name)
    monkeypatch.setattr(serve.subprocess, "run", pg_isready)
    assert serve.ready("postgres") is True
    [argv] = asked
    assert Path(argv[0]).name == "pg_isready"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"


def test_one_memcached_per_instance_run_by_the_image_s_user_and_kept_nowhere(
    compose: ComposeRun, deploy_copy: Path
) -> None:
    resolved = compose(
        deploy_copy / "docker-compose.yml",
        "config",
        "--format",
        "json",
        env={"SESSION_MODE": "memcached", "LAB_AFFINITY": "none"},
    )
    services = json.loads(resolved.stdout)["services"]
    nodes = memcached_services(deploy_copy)
    assert nodes == ["memcached1", "memcached2", "memcached3"]
    assert len(nodes) == len(app_services(deploy_copy))
    for name in nodes:
        node = services[name]
        assert node["command"][0] == "memcached"  # Debian's, on the image's PATH
        assert node["healthcheck"]["test"][-2:] == ["ready", "memcached"]
        assert "user" not in node  # the image's USER, uid 10001
        assert "volumes" not in node  # a restarted node comes back empty
        assert node["restart"] == "no"
        # Every instance waits for every node, as for Redis and PostgreSQL.
        for app in app_services(deploy_copy):
            assert services[app]["depends_on"][name]["condition"] == "service_healthy"


@pytest.mark.cluster
def test_memcached_is_ready_when_it_answers_version_not_when_a_port_is_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    monkeypatch.setitem(serve.PORTS, "memcached", port)
    # The native node's command line (as root, it names a user to run as).
    memcached = subprocess.Popen(memcached_argv(find_binary("memcached"), "127.0.0.1", port))
    try:
        assert wait_until(lambda: serve.ready("memcached"), 10)
    finally:
        memcached.kill()
        memcached.wait(timeout=10)
    assert serve.ready("memcached") is False
    # Something that accepts the connection and never answers in memcached's words.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        monkeypatch.setitem(serve.PORTS, "memcached", silent.getsockname()[1])
        assert serve.ready("memcached") is False
