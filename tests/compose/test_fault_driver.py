"""`ComposeCluster` issues the docker compose commands a scenario needs, exactly.

There is no Docker engine here, so a fake `docker` first on the PATH records
each call as a JSON line (and answers `ps` from a script): the one place a
stand-in is right, since what matters is the command line Docker would get.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from sessions_lab.cluster.compose import RELOAD_NGINX, ComposeCluster
from sessions_lab.cluster.compose_files import write_env
from sessions_lab.cluster.errors import LabError
from sessions_lab.experiments.scenarios import FaultEvent, get_scenario
from tests.fake_tools import install_fake, recorded_calls

FAKE_DOCKER = f"""#!{sys.executable}
import json, os, sys
with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if "ps" in sys.argv:
    script = os.environ["FAKE_DOCKER_PS"]
    with open(script) as file:
        answers = json.load(file)
    answer = answers.pop(0) if len(answers) > 1 else answers[0]
    with open(script, "w") as file:
        json.dump(answers, file)
    print("\\n".join(json.dumps(record) for record in answer))
failing = os.environ.get("FAKE_DOCKER_FAIL")
if failing and failing in sys.argv and not os.path.exists(failing + ".failed"):
    open(failing + ".failed", "w").close()  # once: a retry succeeds
    print(os.environ.get("FAKE_DOCKER_ERROR", "no such container"), file=sys.stderr)
    sys.exit(1)
"""


def container(service: str, state: str, health: str = "healthy") -> dict[str, Any]:
    """One line of `docker compose ps --format json`, as Compose 2.40 writes it."""
    return {
        "Service": service,
        "Name": f"sessions-lab-{service}-1",
        "State": state,
        "Health": health if state == "running" else "",
        "ExitCode": 137 if state == "exited" else 0,
        "Status": "Exited (137) 2 seconds ago" if state == "exited" else "Up 5 seconds",
    }


class FakeDocker:
    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        install_fake(folder, "docker", FAKE_DOCKER, monkeypatch)
        self.log = folder / "docker.jsonl"
        self.ps_script = folder / "ps.json"
        self.answer_ps([[]])
        monkeypatch.setenv("FAKE_DOCKER_LOG", str(self.log))
        monkeypatch.setenv("FAKE_DOCKER_PS", str(self.ps_script))
        monkeypatch.delenv("FAKE_DOCKER_FAIL", raising=False)

    def answer_ps(self, answers: list[list[dict[str, Any]]]) -> None:
        """What successive `ps` calls print (the last answer repeats)."""
        self.ps_script.write_text(json.dumps(answers))

    def calls(self) -> list[list[str]]:
        """Each call's arguments after `docker compose -f FILE`; clears the record."""
        calls = recorded_calls(self.log)
        assert all(call[:2] == ["compose", "-f"] for call in calls)
        return [call[3:] for call in calls]


@pytest.fixture
def docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeDocker:
    return FakeDocker(tmp_path, monkeypatch)


@pytest.fixture
def cluster(deploy_copy: Path) -> ComposeCluster:
    write_env({"SESSION_MODE": "sticky", "LAB_AFFINITY": "cookie"}, deploy_copy)
    return ComposeCluster(deploy_copy)


def fire(cluster: ComposeCluster, scenario: str) -> list[str]:
    """Each event of a scenario's timeline, as the experiment runner fires it."""
    messages = []
    for event in sorted(get_scenario(scenario).timeline(3, None), key=lambda e: e.at):
        if event.action == "kill":
            messages.append(cluster.kill(event.target, event.signal or "KILL"))
        elif event.action == "start":
            messages.append(cluster.start(event.target))
        elif event.action == "drain":
            messages.append(cluster.drain(event.target))
    return messages


PS_APP2 = ["ps", "--all", "--format", "json", "app2"]


def start_only(service: str) -> list[str]:
    return ["up", "--detach", "--no-deps", "--no-recreate", "--no-build", service]


NGINX_CONF = "/etc/nginx/lab/sticky-cookie.conf"
RELOAD = [["exec", "-T", "nginx", *RELOAD_NGINX, NGINX_CONF]]


def test_kill_one_kills_app2_then_starts_it_and_waits_until_healthy(
    docker: FakeDocker, cluster: ComposeCluster
) -> None:
    docker.answer_ps([[container("app2", "exited")], [container("app2", "running")]])
    messages = fire(cluster, "kill-one")
    assert docker.calls() == [
        ["kill", "-s", "SIGKILL", "app2"],
        PS_APP2,  # paused? (then it would be unpause)
        # Only app2: `compose start` would start its dependencies too, and
        # the one-shot migrate would run again mid-scenario.
        start_only("app2"),
        PS_APP2,  # healthy yet?
    ]
    assert messages == ["app2 killed (SIGKILL)", "app2 started"]


def test_cache_node_down_kills_memcached2_then_starts_it_empty(
    docker: FakeDocker, cluster: ComposeCluster
) -> None:
    assert get_scenario("cache-node-down").timeline(3) == (
        FaultEvent(0.4, "kill", "memcached2", "KILL"),
        FaultEvent(0.7, "start", "memcached2"),
    )
    docker.answer_ps([[container("memcached2", "exited")], [container("memcached2", "running")]])
    messages = fire(cluster, "cache-node-down")
    ps = ["ps", "--all", "--format", "json", "memcached2"]
    # The same container again, which has no volume: it starts with nothing in it.
    assert docker.calls() == [
        ["kill", "-s", "SIGKILL", "memcached2"],
        ps,
        start_only("memcached2"),
        ps,
    ]
    assert messages == ["memcached2 killed (SIGKILL)", "memcached2 started"]


def test_a_cache_node_can_be_stopped_or_paused_but_not_drained(
    docker: FakeDocker, cluster: ComposeCluster
) -> None:
    assert cluster.kill("memcached3", "TERM") == "memcached3 stopped (SIGTERM, docker compose stop)"
    assert "paused" in cluster.kill("memcached1", "STOP")
    docker.answer_ps([[container("memcached1", "paused")]])
    assert cluster.start("memcached1") == "memcached1 resumed (docker compose unpause)"
    with pytest.raises(LabError, match="only app instances can be drained"):
        cluster.drain("memcached1")
    assert docker.calls() == [
        ["stop", "--timeout", "8", "memcached3"],
        ["pause", "memcached1"],
        ["ps", "--all", "--format", "json", "memcached1"],
        ["unpause", "memcached1"],
    ]


REPLICATED = [
    "redis-primary",
    "app1-replica",
    "app2-replica",
    "app3-replica",
    "sentinel1",
    "sentinel2",
    "sentinel3",
]


def test_store_failover_kills_the_primary_then_starts_it_again(
    docker: FakeDocker, cluster: ComposeCluster
) -> None:
    assert get_scenario("store-failover").timeline(3) == (
        FaultEvent(0.4, "kill", "redis-primary", "KILL"),
        FaultEvent(0.7, "start", "redis-primary"),
    )
    docker.answer_ps(
        [[container("redis-primary", "exited")], [container("redis-primary", "running")]]
    )
    messages = fire(cluster, "store-failover")
    ps = ["ps", "--all", "--format", "json", "redis-primary"]
    # The same container, started alone: it comes back empty, as a primary, until
    # the Sentinels make it a replica of the one they promoted.
    assert docker.calls() == [
        ["kill", "-s", "SIGKILL", "redis-primary"],
        ps,
        start_only("redis-primary"),
        ps,
    ]
    assert messages == ["redis-primary killed (SIGKILL)", "redis-primary started"]


@pytest.mark.parametrize("target", REPLICATED)
def test_every_server_of_the_replicated_store_is_a_target_that_cannot_be_drained(
    docker: FakeDocker, cluster: ComposeCluster, target: str
) -> None:
    assert cluster.kill(target) == f"{target} killed (SIGKILL)"
    assert cluster.kill(target, "TERM") == f"{target} stopped (SIGTERM, docker compose stop)"
    assert "paused" in cluster.kill(target, "STOP")
    docker.answer_ps([[container(target, "paused")]])
    assert cluster.start(target) == f"{target} resumed (docker compose unpause)"
    docker.answer_ps([[container(target, "exited")], [container(target, "running")]])
    # A Sentinel started again is the same container: it keeps the file it rewrote.
    assert cluster.start(target) == f"{target} started"
    with pytest.raises(LabError, match="only app instances can be drained"):
        cluster.drain(target)
    ps = ["ps", "--all", "--format", "json", target]
    assert docker.calls() == [
        ["kill", "-s", "SIGKILL", target],
        ["stop", "--timeout", "8", target],
        ["pause", target],
        ps,
        ["unpause", target],
        ps,
        start_only(target),
        ps,
    ]


def test_the_command_names_the_compose_file(docker: FakeDocker, cluster: ComposeCluster) -> None:
    cluster.kill("app2")
    argv = json.loads(docker.log.read_text().splitlines()[0])
    assert argv == ["compose", "-f", str(cluster.compose_file), "kill", "-s", "SIGKILL", "app2"]


def test_stop_pauses_and_start_unpauses(docker: FakeDocker, cluster: ComposeCluster) -> None:
    assert "paused" in cluster.kill("app2", "STOP")
    docker.answer_ps([[container("app2", "paused")]])
    assert cluster.start("app2") == "app2 resumed (docker compose unpause)"
    assert docker.calls() == [["pause", "app2"], PS_APP2, ["unpause", "app2"]]


def test_term_is_a_graceful_stop_bounded_like_the_native_one(
    docker: FakeDocker, cluster: ComposeCluster
) -> None:
    cluster.kill("app3", "SIGTERM")
    assert docker.calls() == [["stop", "--timeout", "8", "app3"]]


def test_drain_renders_nginx_without_the_instance_and_reloads_it(
    docker: FakeDocker, cluster: ComposeCluster, deploy_copy: Path
) -> None:
    conf = deploy_copy / "nginx" / "sticky-cookie.conf"
    assert "server app2:8000" in conf.read_text()
    assert cluster.drain("app2").startswith("app2 drained")
    assert "server app2:8000" not in conf.read_text()
    assert docker.calls() == RELOAD
    assert [p["name"] for p in cluster.status()["processes"] if p["drained"]] == ["app2"]
    docker.calls()

    docker.answer_ps([[container("app2", "running")]])
    assert cluster.start("app2") == "app2 started and back in nginx"
    assert "server app2:8000" in conf.read_text()
    assert docker.calls() == [PS_APP2, start_only("app2"), PS_APP2, *RELOAD]


def test_rolling_restart_drains_each_instance_before_stopping_it(
    docker: FakeDocker, cluster: ComposeCluster
) -> None:
    docker.answer_ps([[container(f"app{n}", "running") for n in (1, 2, 3)]])
    fire(cluster, "rolling-restart")
    expected = []
    for name in ("app1", "app2", "app3"):
        ps = ["ps", "--all", "--format", "json", name]
        expected += [*RELOAD, ["stop", "--timeout", "8", name], ps, start_only(name), ps, *RELOAD]
    assert docker.calls() == expected


def test_up_renders_records_the_choice_and_waits_for_nginx(
    docker: FakeDocker, deploy_copy: Path
) -> None:
    docker.answer_ps([[container(s, "running") for s in ("app1", "app2", "app3", "nginx")]])
    state = ComposeCluster(deploy_copy).up(
        "redis", redis_persistence="aof", demo_users=30, port=18080
    )
    assert docker.calls() == [
        ["up", "--detach", "--build", "--wait", "--wait-timeout", "300", "nginx"],
        ["ps", "--all", "--format", "json"],
    ]
    env = (deploy_copy / ".env").read_text()
    for line in ("SESSION_MODE=redis", "LAB_AFFINITY=none", "LAB_REDIS_PERSISTENCE=aof"):
        assert f"\n{line}\n" in env
    assert "LAB_DEMO_USERS=30" in env
    assert "\nLAB_PORT=18080\n" in env  # published there; nginx listens on 8080 inside
    assert "\nSECRET_KEY=\n" not in env and "\nJWT_SIGNING_KEY=\n" not in env
    assert state["mode"] == "redis" and state["url"] == "http://127.0.0.1:18080/"
    assert (deploy_copy / "nginx" / "redis-none.conf").exists()
    assert "\nLAB_REPLICATION=async\n" in env


def test_up_in_replicated_mode_records_the_replication(
    docker: FakeDocker, deploy_copy: Path
) -> None:
    docker.answer_ps([[container(s, "running") for s in ("app1", "app2", "app3", "nginx")]])
    state = ComposeCluster(deploy_copy).up("replicated", replication="sync")
    # nginx depends on the instances, which depend on the primary, the replicas
    # and the Sentinels: one `up` starts them all, in the native order.
    assert docker.calls()[0] == [
        "up", "--detach", "--build", "--wait", "--wait-timeout", "300", "nginx"
    ]  # fmt: skip
    env = (deploy_copy / ".env").read_text()
    for line in ("SESSION_MODE=replicated", "LAB_AFFINITY=none", "LAB_REPLICATION=sync"):
        assert f"\n{line}\n" in env
    assert state["mode"] == "replicated"
    for name in REPLICATED:
        assert (deploy_copy / "replication" / f"{name}.conf").is_file()


def test_keys_are_made_once_and_kept(cluster: ComposeCluster, deploy_copy: Path) -> None:
    first = (deploy_copy / ".env").read_text()
    write_env({"SESSION_MODE": "db", "LAB_AFFINITY": "none"}, deploy_copy)
    second = (deploy_copy / ".env").read_text()
    keys = [line for line in first.splitlines() if line.startswith(("SECRET_KEY", "JWT_"))]
    assert len(keys) == 2 and all(len(line) > 60 for line in keys)
    assert all(line in second.splitlines() for line in keys)
    assert (deploy_copy / ".env").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.kill("app9"), "unknown target 'app9'"),
        (lambda c: c.kill("app2", "HUP"), "--signal is one of KILL, TERM, STOP"),
        (lambda c: c.drain("redis"), "only app instances can be drained"),
        (lambda c: c.up("sticky", instances=5), "defines 3 instances"),
        (lambda c: c.up("redis", affinity="ip"), "--affinity applies to --mode sticky only"),
        (lambda c: c.up("replicated", replication="semi"), "--replication is one of async, sync"),
        (lambda c: c.drain("sentinel1"), "only app instances can be drained"),
    ],
)
def test_requests_that_cannot_be_carried_out_issue_nothing(
    docker: FakeDocker, cluster: ComposeCluster, call: Any, message: str
) -> None:
    with pytest.raises(LabError, match=message.replace("(", r"\(")):
        call(cluster)
    assert docker.calls() == []


def test_a_failing_docker_command_is_a_lab_error(
    docker: FakeDocker, cluster: ComposeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(docker.log.parent)
    monkeypatch.setenv("FAKE_DOCKER_FAIL", "kill")
    with pytest.raises(LabError, match="docker compose kill -s SIGKILL app2: no such container"):
        cluster.kill("app2")


def test_killing_a_paused_instance_unpauses_it_first(
    docker: FakeDocker, cluster: ComposeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(docker.log.parent)
    monkeypatch.setenv("FAKE_DOCKER_FAIL", "kill")
    monkeypatch.setenv("FAKE_DOCKER_ERROR", "cannot kill container: app2 is paused")
    assert cluster.kill("app2") == "app2 killed (SIGKILL)"
    kill = ["kill", "-s", "SIGKILL", "app2"]
    assert docker.calls() == [kill, ["unpause", "app2"], kill]


def test_down_leaves_no_drained_configuration_behind(
    docker: FakeDocker, cluster: ComposeCluster, deploy_copy: Path
) -> None:
    cluster.drain("app2")
    assert cluster.down().startswith("every service stopped")
    assert "server app2:8000" in (deploy_copy / "nginx" / "sticky-cookie.conf").read_text()
    assert docker.calls()[-1] == ["down"]


def test_the_order_audit_reads_the_database_in_app1s_container(
    docker: FakeDocker, cluster: ComposeCluster
) -> None:
    cluster.manage("orders_placed", "--since", "1796000000.000")
    assert docker.calls() == [
        ["exec", "-T", "app1", "python", "manage.py", "orders_placed", "--since", "1796000000.000"]
    ]


def test_status_reads_compose_ps(docker: FakeDocker, cluster: ComposeCluster) -> None:
    docker.answer_ps(
        [
            [
                container("nginx", "running"),
                container("app1", "running"),
                container("app2", "exited"),
                container("app3", "paused"),
                container("redis", "running", health="starting"),
                container("memcached1", "running"),
                container("memcached2", "exited"),
                container("redis-primary", "exited"),
                container("app1-replica", "running", health="unhealthy"),
                container("app2-replica", "running"),
                container("sentinel1", "running"),
                container("sentinel3", "paused"),
            ]
        ]
    )
    state = cluster.status()
    by_name = {p["name"]: p for p in state["processes"]}
    assert [p["name"] for p in state["processes"]] == cluster.targets()
    assert cluster.targets()[-10:-7] == ["memcached1", "memcached2", "memcached3"]
    # The replicated store last, in the native order, with the native roles.
    assert cluster.targets()[-7:] == REPLICATED
    assert {name: by_name[name]["role"] for name in REPLICATED} == {
        "redis-primary": "primary",
        "app1-replica": "replica",
        "app2-replica": "replica",
        "app3-replica": "replica",
        "sentinel1": "sentinel",
        "sentinel2": "sentinel",
        "sentinel3": "sentinel",
    }
    assert {by_name[name]["port"] for name in REPLICATED[:4]} == {6379}
    assert {by_name[f"sentinel{n}"]["port"] for n in (1, 2, 3)} == {26379}
    assert by_name["redis-primary"]["status"] == "exited"
    assert by_name["redis-primary"]["exit"]["code"] == 137
    assert by_name["app1-replica"]["healthy"] is False  # its link to a primary is down
    assert by_name["app2-replica"]["healthy"] is True
    assert by_name["app3-replica"]["status"] == "not started"
    assert by_name["sentinel1"]["healthy"] is True
    assert by_name["sentinel3"]["status"] == "paused" and not by_name["sentinel3"]["healthy"]
    assert {by_name[f"memcached{n}"]["role"] for n in (1, 2, 3)} == {"memcached"}
    assert {by_name[f"memcached{n}"]["port"] for n in (1, 2, 3)} == {11211}
    assert by_name["memcached1"]["healthy"] is True
    assert by_name["memcached2"]["status"] == "exited"
    assert by_name["memcached3"]["status"] == "not started"
    assert state["phase"] == "degraded"
    assert by_name["app2"]["status"] == "exited" and by_name["app2"]["exit"]["code"] == 137
    assert by_name["app3"]["status"] == "paused" and not by_name["app3"]["healthy"]
    assert by_name["redis"]["healthy"] is False
    assert by_name["postgres"]["status"] == "not started"
    assert by_name["app1"]["healthy"] is True


def test_logs_are_collected_where_the_runner_copies_them_from(
    docker: FakeDocker, cluster: ComposeCluster
) -> None:
    logs = cluster.collect_logs()
    assert logs == cluster.run.logs
    assert {p.name for p in logs.iterdir()} >= {
        "prepare-database.log",
        "app2.log",
        "memcached2.log",
        "redis-primary.log",
        "app3-replica.log",
        "sentinel2.log",
        "nginx.log",
        "nginx-access.jsonl",
    }
    assert ["logs", "--no-color", "--no-log-prefix", "nginx"] in docker.calls()
