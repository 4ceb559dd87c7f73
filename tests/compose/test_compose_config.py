"""`docker compose config -q` accepts the deployment in every mode, and can say no."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from pathlib import Path

import pytest
import redis

from sessions_lab.cluster import compose_files, serve
from sessions_lab.cluster.binaries import find_binary
from sessions_lab.cluster.compose_files import (
    affinities_for,
    app_services,
    memcached_services,
    replica_services,
    replication_services,
    sentinel_services,
    variant_name,
)
from sessions_lab.cluster.memcached import memcached_argv
from sessions_lab.cluster.network import free_port, redis_ok
from sessions_lab.cluster.replication import PRIMARY, sentinel_conf, server_conf
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
        if name in ("migrate", "locust", "locust-worker"):
            continue
        assert service["healthcheck"]["test"] == [
            "CMD", "python", "-m", "sessions_lab.cluster.serve", "ready", kind_of(name)
        ]  # fmt: skip


def kind_of(service: str) -> str:
    """What ``serve ready`` checks a service as: app1 -> app, memcached2 -> memcached,
    redis-primary -> primary, app3-replica -> replica, sentinel1 -> sentinel."""
    if service == PRIMARY:
        return "primary"
    if service.endswith("-replica"):
        return "replica"
    return re.sub(r"\d+$", "", service)


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


# ---------------------------------------------------------------------- the replicated store


def test_the_replicated_store_runs_in_every_mode_from_read_only_rendered_files(
    compose: ComposeRun, deploy_copy: Path
) -> None:
    resolved = compose(deploy_copy / "docker-compose.yml", "config", "--format", "json")
    services = json.loads(resolved.stdout)["services"]
    replicas, sentinels = replica_services(deploy_copy), sentinel_services(deploy_copy)
    assert replicas == [f"{app}-replica" for app in app_services(deploy_copy)]
    assert sentinels == ["sentinel1", "sentinel2", "sentinel3"]
    for name in replication_services(deploy_copy):
        server = services[name]
        # The one image and its valkey-server, through serve (a Sentinel: `serve sentinel`).
        assert server["image"] == services["app1"]["image"]
        command = "sentinel" if name in sentinels else "redis"
        conf = f"/etc/valkey/replication/{name}.conf"
        assert server["command"] == ["python", "-m", "sessions_lab.cluster.serve", command, conf]
        [mount] = server["volumes"]
        # The rendered file, read-only; no named volume: a new container starts empty.
        assert mount["type"] == "bind" and mount["read_only"] is True
        assert (Path(mount["source"]) / Path(conf).name).is_file()
        assert mount["target"] == str(Path(conf).parent)
        assert "user" not in server and server["restart"] == "no"
        # Every instance waits for every one of them, as for the memcached nodes.
        for app in app_services(deploy_copy):
            assert services[app]["depends_on"][name]["condition"] == "service_healthy"
    # The native order: the primary, then its replicas, then the Sentinels.
    assert "depends_on" not in services[PRIMARY]
    for name in replicas:
        assert set(services[name]["depends_on"]) == {PRIMARY}
    for name in sentinels:
        assert set(services[name]["depends_on"]) == {PRIMARY, *replicas}
        assert all(
            d["condition"] == "service_healthy" for d in services[name]["depends_on"].values()
        )


@pytest.mark.parametrize(("set_to", "expected"), [(None, "async"), ("sync", "sync")])
def test_each_instance_reads_its_own_replica_and_lab_replication_picks_the_writes(
    compose: ComposeRun, deploy_copy: Path, set_to: str | None, expected: str
) -> None:
    env = {"SESSION_MODE": "replicated", "LAB_AFFINITY": "none"}
    if set_to:
        env["LAB_REPLICATION"] = set_to
    resolved = compose(deploy_copy / "docker-compose.yml", "config", "--format", "json", env=env)
    services = json.loads(resolved.stdout)["services"]
    for app in app_services(deploy_copy):
        environment = services[app]["environment"]
        assert environment["REDIS_REPLICA_URL"] == f"redis://{app}-replica:6379/0"
        assert environment["REDIS_SENTINELS"] == "sentinel1:26379,sentinel2:26379,sentinel3:26379"
        assert environment["SESSION_REPLICATION"] == expected


def test_each_server_names_the_others_by_service_name(deploy_copy: Path) -> None:
    """Nothing rendered depends on LAB_SUBNET_PREFIX: names, which extra_hosts resolve."""
    for name in replication_services(deploy_copy):
        conf = (deploy_copy / "replication" / f"{name}.conf").read_text()
        assert "172.30." not in conf and "127.0.0.1" not in conf
        assert "bind 0.0.0.0\n" in conf and "dir /data\n" in conf
        if name in sentinel_services(deploy_copy):
            assert "port 26379\n" in conf
            assert "sentinel monitor sessions redis-primary 6379 2\n" in conf
            assert f"sentinel announce-ip {name}\n" in conf
        else:
            assert "port 6379\n" in conf
            assert f"replica-announce-ip {name}\n" in conf
            assert ("replicaof redis-primary 6379\n" in conf) is (name != PRIMARY)
    with pytest.raises(compose_files.LabError, match="no server of the replicated store"):
        compose_files.replication_conf("app1", deploy_copy)


def test_serve_and_the_renderer_agree_on_the_ports() -> None:
    assert serve.PORTS["primary"] == serve.PORTS["replica"] == compose_files.REPLICATED_PORT
    assert serve.PORTS["sentinel"] == compose_files.SENTINEL_PORT
    assert str(serve.SENTINEL_CONF.parent) == compose_files.REPLICATION_DATA_DIR


def test_a_sentinel_runs_on_its_own_copy_made_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serve, "tool", lambda name: Path("/lab") / name)
    rendered = tmp_path / "sentinel1.conf"
    rendered.write_text("rendered\n")
    copy = tmp_path / "data" / "sentinel.conf"
    copy.parent.mkdir()
    assert serve.sentinel_argv(rendered, copy) == ["/lab/valkey-server", str(copy), "--sentinel"]
    assert copy.read_text() == "rendered\n"
    copy.write_text("what it learnt\n")  # Sentinel rewrote it; then it was killed
    serve.sentinel_argv(rendered, copy)  # started again: the same container
    assert copy.read_text() == "what it learnt\n"

    execs: list[tuple[str, ...]] = []
    monkeypatch.setattr(serve, "SENTINEL_CONF", copy)
    monkeypatch.setattr(serve, "exec_", lambda binary, *args: execs.append((str(binary), *args)))
    serve.main(["sentinel", str(rendered)])
    assert execs == [("/lab/valkey-server", str(copy), "--sentinel")]


@pytest.mark.cluster
def test_replicated_servers_are_ready_as_natively(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica is ready once linked to its primary (or promoted), not when it merely
    answers; the primary and a Sentinel when they answer PING; a Sentinel started through
    `serve` rewrites its copy, never the rendered file, and keeps it when started again."""
    valkey = find_binary("redis").path
    primary_port, replica_port, sentinel_port = free_port(), free_port(), free_port()
    started: list[subprocess.Popen[bytes]] = []

    def run(argv: list[str], name: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{name}.log").open("ab")
        started.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path))
        return started[-1]

    def server(name: str, port: int, primary: tuple[str, int] | None) -> Path:
        data = tmp_path / name
        data.mkdir(exist_ok=True)
        conf = data / "valkey.conf"
        conf.write_text(server_conf("127.0.0.1", port, str(data), primary))
        return conf

    try:
        replica_conf = server("replica", replica_port, ("127.0.0.1", primary_port))
        run([str(valkey), str(replica_conf)], "replica")
        monkeypatch.setitem(serve.PORTS, "replica", replica_port)
        assert wait_until(lambda: redis_ok(replica_port), 10)
        assert serve.ready("replica") is False  # up, but no primary to copy

        primary = run([str(valkey), str(server("primary", primary_port, None))], "primary")
        monkeypatch.setitem(serve.PORTS, "primary", primary_port)
        assert wait_until(lambda: serve.ready("primary"), 10)
        assert wait_until(lambda: serve.ready("replica"), 15)

        rendered = tmp_path / "sentinel1.conf"
        rendered.write_text(
            sentinel_conf(
                "127.0.0.1", sentinel_port, str(tmp_path), ("127.0.0.1", primary_port), "127.0.0.1"
            )
        )
        before = rendered.read_text()
        copy = tmp_path / "sentinel.conf"
        monkeypatch.setitem(serve.PORTS, "sentinel", sentinel_port)
        sentinel = run(serve.sentinel_argv(rendered, copy), "sentinel1")
        assert wait_until(lambda: serve.ready("sentinel"), 10)
        assert wait_until(lambda: "known-replica" in copy.read_text(), 15)
        assert rendered.read_text() == before
        learnt = copy.read_text()
        sentinel.kill()
        sentinel.wait(timeout=10)
        assert serve.ready("sentinel") is False
        run(serve.sentinel_argv(rendered, copy), "sentinel1")
        assert wait_until(lambda: serve.ready("sentinel"), 10)
        myid = next(line for line in learnt.splitlines() if line.startswith("sentinel myid"))
        assert myid in copy.read_text()  # the same Sentinel, with what it had learnt

        primary.kill()
        primary.wait(timeout=10)
        assert wait_until(lambda: not serve.ready("replica"), 10)  # its link is down
        # Promoted (as the Sentinels do), it is the primary: ready, or compose would refuse
        # to `start` anything that waits for it.
        redis.Redis("127.0.0.1", replica_port, socket_timeout=2).execute_command(
            "REPLICAOF", "NO", "ONE"
        )
        assert wait_until(lambda: serve.ready("replica"), 10)
    finally:
        for process in started:
            process.kill()
            process.wait(timeout=10)
