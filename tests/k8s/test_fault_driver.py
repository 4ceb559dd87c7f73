"""`KubernetesCluster` issues the kubectl commands a scenario needs, exactly, or refuses it.

Against the recording fake `kubectl` of ``fake_kubectl``: what matters is the
command line a cluster would get, and a real cluster is not here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from sessions_lab.cli import main
from sessions_lab.cluster import k8s_driver
from sessions_lab.cluster.config import ShopOptions
from sessions_lab.cluster.driver import DRIVERS, driver_for
from sessions_lab.cluster.errors import LabError, LabFailure
from sessions_lab.cluster.k8s_driver import KubernetesCluster, refusal, unsupported
from sessions_lab.cluster.k8s_forward import healthz
from sessions_lab.experiments.scenarios import SCENARIOS, FaultEvent, stores
from sessions_lab.modes import MODE_NAMES
from tests.k8s.fake_kubectl import (
    GET_SHOP,
    RUNNING,
    FakeKubectl,
    fire,
    free_port,
    get,
    gone,
    kill,
    label,
    overlay,
    pod,
    store,
    term,
)


@pytest.fixture
def kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKubectl:
    monkeypatch.setattr(k8s_driver, "POLL", 0.01)
    return FakeKubectl(tmp_path, monkeypatch)


@pytest.fixture
def k8s_dir(tmp_path: Path) -> Path:
    """deploy/k8s/ as far as the driver reads it: each overlay with its keys."""
    k8s = tmp_path / "k8s"
    for mode in MODE_NAMES:
        (k8s / "overlays" / mode).mkdir(parents=True)
        (k8s / "overlays" / mode / "lab.env").write_text("SECRET_KEY=k8s-test-secret-key\n")
    return k8s


@pytest.fixture
def cluster(kubectl: FakeKubectl, k8s_dir: Path, tmp_path: Path) -> Iterator[KubernetesCluster]:
    cluster = KubernetesCluster(tmp_path / "run", k8s_dir)
    yield cluster
    cluster.forward.stop()  # whatever a test left running, by its pid


# ---------------------------------------------------------------------- every scenario


def timelines() -> list[tuple[str, tuple[FaultEvent, ...]]]:
    """Each scenario's distinct timelines, resolved as the runner resolves them for each
    mode it applies to (the database is PostgreSQL on Kubernetes)."""
    found: dict[tuple[str, tuple[FaultEvent, ...]], None] = {}
    for name, scenario in SCENARIOS.items():
        for mode in MODE_NAMES:
            if scenario.expectation(mode, "postgres", "none") is not None:
                found[(name, scenario.timeline(3, stores(mode, "postgres", "none")))] = None
    return list(found)


REFUSED = {
    "rolling-restart": (
        "rolling-restart cannot run with --driver kubernetes: it drains app1 out of the load "
        "balancer first, and the lab cannot take a pod out of ingress-nginx's rotation ahead "
        "of its SIGTERM: deleting the pod does both at once, which is what "
        "rolling-restart-nodrain measures; run it with --driver native or compose"
    ),
    "lb-down": (
        "lb-down cannot run with --driver kubernetes: it stops nginx, and the load balancer "
        "here is the cluster's ingress-nginx controller, which the lab does not own; run it "
        "with --driver native or compose"
    ),
    "hang-one": (
        "hang-one cannot run with --driver kubernetes: it hangs app2 (SIGSTOP), and kubectl "
        "cannot pause a container's processes; run it with --driver native or compose"
    ),
}

# (scenario, its first target) -> the pods each `get pods` lists, and the commands.
FIRED: dict[tuple[str, str | None], tuple[list[list[dict[str, Any]]], list[list[str]]]] = {
    ("kill-one", "app2"): (
        [RUNNING, [RUNNING[0], RUNNING[2], pod("shop-ddddd", created="2026-11-30T10:09:00Z")]],
        [GET_SHOP, kill("shop-bbbbb"), GET_SHOP, label("shop-ddddd", "app2")],
    ),
    # Each instance's pod in turn, found by its label: the replacement of app1 is
    # the newest pod, yet app2 is still the pod that was app2.
    ("rolling-restart-nodrain", "app1"): (
        [
            RUNNING,
            # Still terminating (and still labelled app1), its replacement not ready yet.
            [pod("shop-aaaaa", "app1", deleting=True), *RUNNING[1:], pod("shop-d", ready=False)],
            [*RUNNING[1:], pod("shop-d")],
            [*RUNNING[1:], pod("shop-d", "app1")],
            [RUNNING[2], pod("shop-d", "app1"), pod("shop-e")],
            [RUNNING[2], pod("shop-d", "app1"), pod("shop-e", "app2")],
            [pod("shop-d", "app1"), pod("shop-e", "app2"), pod("shop-f")],
        ],
        [
            GET_SHOP,
            term("shop-aaaaa"),
            GET_SHOP,
            GET_SHOP,
            label("shop-d", "app1"),
            GET_SHOP,
            term("shop-bbbbb"),
            GET_SHOP,
            label("shop-e", "app2"),
            GET_SHOP,
            term("shop-ccccc"),
            GET_SHOP,
            label("shop-f", "app3"),
        ],
    ),
    # The StatefulSet starts the pod again under its name: start waits until it is ready.
    ("store-restart", "redis"): (
        [[store("redis-0", "redis", ready=False)], [store("redis-0", "redis")]],
        [kill("redis-0"), get("redis"), get("redis")],
    ),
    ("store-restart", "postgres"): (
        [[store("postgres-0", "postgres")]],
        [kill("postgres-0"), get("postgres")],
    ),
    # memcached2 is the second node: memcached-1.
    ("cache-node-down", "memcached2"): (
        [[store(f"memcached-{n}", "memcached") for n in range(3)]],
        [kill("memcached-1"), get("memcached")],
    ),
    ("store-failover", "redis-primary"): (
        [[store("redis-primary-0", "redis-primary")]],
        [kill("redis-primary-0"), get("redis-primary")],
    ),
    ("scale-out", "app4"): (
        [RUNNING, [*RUNNING, pod("shop-ddddd", ready=False)], [*RUNNING, pod("shop-ddddd")]],
        [
            GET_SHOP,
            ["scale", "deployment/shop", "--replicas=4"],
            GET_SHOP,
            GET_SHOP,
            label("shop-ddddd", "app4"),
        ],
    ),
    ("two-tabs", None): ([[]], []),
    ("idle-timeout", None): ([[]], []),
}


@pytest.mark.parametrize(
    ("scenario", "timeline"),
    timelines(),
    ids=[f"{name}-{t[0].target if t else 'no-fault'}" for name, t in timelines()],
)
def test_every_scenario_is_fired_exactly_or_refused_before_anything(
    kubectl: FakeKubectl,
    cluster: KubernetesCluster,
    scenario: str,
    timeline: tuple[FaultEvent, ...],
) -> None:
    if scenario in REFUSED:
        assert refusal(scenario, timeline) == REFUSED[scenario]
        # The driver refuses the same event the same way, and asks kubectl nothing.
        with pytest.raises(LabError, match=r"with --driver kubernetes: it (hangs|stops|drains)"):
            fire(cluster, timeline)
        assert kubectl.calls() == []
        return
    assert refusal(scenario, timeline) is None
    answers, expected = FIRED[(scenario, timeline[0].target if timeline else None)]
    kubectl.answer_pods(answers)
    fire(cluster, timeline)
    assert kubectl.calls() == expected


def test_every_scenario_of_the_registry_is_covered() -> None:
    fired = {(name, t[0].target if t else None) for name, t in timelines() if name not in REFUSED}
    assert fired == set(FIRED)
    assert {*REFUSED, *(name for name, _ in FIRED)} == set(SCENARIOS)


def test_kill_one_says_what_kubernetes_does_in_place_of_the_native_restart(
    kubectl: FakeKubectl, cluster: KubernetesCluster
) -> None:
    answers, _ = FIRED[("kill-one", "app2")]
    kubectl.answer_pods(answers)
    assert fire(cluster, SCENARIOS["kill-one"].timeline(3)) == [
        "app2 (pod shop-bbbbb) deleted at once (--grace-period=0 --force); the Deployment "
        "starts a new pod in its place right away, not when the scenario starts it: "
        "`start app2` waits until it is ready",
        "app2 is pod shop-ddddd now: the Deployment's replacement, ready",
    ]


def test_a_store_comes_back_under_its_name(
    kubectl: FakeKubectl, cluster: KubernetesCluster
) -> None:
    kubectl.answer_pods([[store("redis-0", "redis")]])
    assert (
        cluster.start("redis") == "redis (pod redis-0) is ready: StatefulSet redis started it again"
    )
    assert cluster.kill("memcached3", "TERM") == (
        "memcached3 (pod memcached-2) deleted gracefully (SIGTERM, then its grace period); "
        "StatefulSet memcached starts memcached-2 again right away, not when the scenario "
        "starts it: `start memcached3` waits until it is ready"
    )
    assert kubectl.calls() == [get("redis"), term("memcached-2")]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.kill("app2", "STOP"), "cannot kill app2 with --driver kubernetes: it hangs app2 (SIGSTOP)"),
        (lambda c: c.start("nginx"), "cannot start nginx with --driver kubernetes: it stops nginx"),
        (lambda c: c.drain("app1"), "cannot drain app1 with --driver kubernetes: it drains app1"),
        (lambda c: c.kill("app1-replica"), "a replica is a container of an app pod here"),
        (lambda c: c.add("redis"), "only app instances can be added"),
        (lambda c: c.kill("app2", "HUP"), "--signal is one of KILL, TERM, STOP"),
        (lambda c: c.kill("mongo"), "unknown target 'mongo'"),
    ],
)  # fmt: skip
def test_requests_that_cannot_be_carried_out_issue_nothing(
    kubectl: FakeKubectl, cluster: KubernetesCluster, call: Any, message: str
) -> None:
    with pytest.raises(LabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(cluster)
    assert kubectl.calls() == []


def test_an_instance_no_pod_is_or_a_wrong_scale_out_name_is_refused(
    kubectl: FakeKubectl, cluster: KubernetesCluster
) -> None:
    kubectl.answer_pods([RUNNING[:1]])
    with pytest.raises(LabError, match=r"no pod of the shop is app2 now \(instances: app1\)"):
        cluster.kill("app2")
    with pytest.raises(LabError, match="the Deployment runs 1 pods: the next instance is app2"):
        cluster.add("app4")
    assert kubectl.calls() == [GET_SHOP, GET_SHOP]


# ---------------------------------------------------------------------- up and down


def test_up_applies_scales_waits_labels_and_forwards_then_down_undoes_it(
    kubectl: FakeKubectl, cluster: KubernetesCluster, k8s_dir: Path
) -> None:
    port = free_port()
    unlabelled = [pod("shop-aaaaa"), pod("shop-bbbbb"), pod("shop-ccccc")]
    everything = [*RUNNING, store("redis-0", "redis"), store("postgres-0", "postgres")]
    kubectl.answer_pods([unlabelled, everything])
    state = cluster.up("redis", db="postgres", port=port, demo_users=30)
    forward = ["-n", "ingress-nginx", "port-forward", "service/ingress-nginx-controller", f"{port}:80"]  # fmt: skip
    assert kubectl.calls() == [
        ["apply", "-k", overlay(k8s_dir, "redis")],
        ["scale", "deployment/shop", "--replicas=3"],
        ["wait", "--for=condition=complete", "job/migrate", "--timeout=300s"],
        ["rollout", "status", "deployment/shop", "--timeout=300s"],
        GET_SHOP,
        label("shop-aaaaa", "app1"),
        label("shop-bbbbb", "app2"),
        label("shop-ccccc", "app3"),
        ["exec", "deployment/shop", "--", "python", "manage.py", "create_demo_users", "30"],
        forward,
        ["get", "pods", "-o", "json"],
    ]
    assert state["url"] == f"http://127.0.0.1:{port}/" and state["phase"] == "ready"
    assert (
        state["mode"] == "redis" and state["db"] == "postgres" and state["driver"] == "kubernetes"
    )
    assert [(p["name"], p["pod"]) for p in state["processes"]] == [
        ("app1", "shop-aaaaa"),
        ("app2", "shop-bbbbb"),
        ("app3", "shop-ccccc"),
        ("postgres", "postgres-0"),
        ("redis", "redis-0"),
    ]
    # The port-forward runs in its own process group, its pid in the run folder.
    pid = int(cluster.forward.pid_file.read_text())
    assert psutil.Process(pid).cmdline()[-2:] == forward[-2:]
    assert os.getpgid(pid) == pid
    assert healthz(port)

    assert cluster.down() == (
        "the redis overlay's objects deleted from namespace lab (PostgreSQL's volume claim "
        "kept); port-forward stopped"
    )
    assert kubectl.calls() == [
        ["delete", "-k", overlay(k8s_dir, "redis"), "--ignore-not-found", "--wait=true", "--timeout=300s"]
    ]  # fmt: skip
    assert gone(pid) and not cluster.forward.pid_file.exists()
    assert not healthz(port)


def test_down_from_another_process_stops_the_recorded_port_forward(
    kubectl: FakeKubectl, cluster: KubernetesCluster, k8s_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    kubectl.answer_pods([RUNNING])
    cluster.up("sticky", db="postgres", port=port)
    pid = int(cluster.forward.pid_file.read_text())
    # A new driver, as `down` in a later command would have: it knows the pid only.
    assert KubernetesCluster(tmp_path / "run", k8s_dir).down().endswith("port-forward stopped")
    assert gone(pid)
    assert not healthz(port)


def test_an_overlay_without_its_keys_is_refused(
    kubectl: FakeKubectl, cluster: KubernetesCluster, k8s_dir: Path
) -> None:
    (k8s_dir / "overlays" / "db" / "lab.env").unlink()
    with pytest.raises(LabError) as refused:
        cluster.up("db", db="postgres")
    assert str(refused.value) == (
        f"{k8s_dir.resolve()}/overlays/db/lab.env is missing: run `sessions-lab render --target "
        "k8s --mode db` first (it writes the overlay's keys)"
    )
    assert kubectl.calls() == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"db": "sqlite"}, "--driver kubernetes cannot run --db sqlite: the overlays run the shop on PostgreSQL (deploy/k8s/base/postgres.yaml); pass --db postgres, so that predictions and report say what ran"),
        ({"db": "postgres", "affinity": "ip"}, "--driver kubernetes cannot run --affinity ip: the sticky overlay pins clients with ingress-nginx's cookie only (--affinity cookie)"),
        ({"db": "postgres", "redis_persistence": "aof"}, "--driver kubernetes cannot run --redis-persistence aof: Valkey keeps no append-only file there (deploy/k8s/stores/redis/none.conf)"),
        ({"db": "postgres", "replication": "sync"}, "--driver kubernetes cannot run --replication sync: the replicated overlay's instances save without waiting for a replica (SESSION_REPLICATION=async)"),
        ({"db": "postgres", "shop": ShopOptions(session_idle=5)}, "--driver kubernetes cannot run the shop's options (logged out after 5 s idle): the overlays run them at their defaults (the shop-env ConfigMap); --cart-store, --encrypt-sessions, --session-idle and --session-absolute need --driver native or compose"),
    ],
)  # fmt: skip
def test_options_the_overlays_cannot_honour_are_refused_before_anything(
    kubectl: FakeKubectl, cluster: KubernetesCluster, options: dict[str, Any], message: str
) -> None:
    assert unsupported(**options) == message
    with pytest.raises(LabError) as refused:
        cluster.up("sticky", **options)
    assert str(refused.value) == message
    assert kubectl.calls() == []


def test_a_failing_kubectl_is_a_lab_error_with_its_stderr(
    kubectl: FakeKubectl, cluster: KubernetesCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubectl.answer_pods([RUNNING])
    monkeypatch.setenv("FAKE_KUBECTL_FAIL", "delete")
    forbidden = 'Error from server (Forbidden): pods "shop-bbbbb" is forbidden'
    monkeypatch.setenv("FAKE_KUBECTL_ERROR", forbidden)
    with pytest.raises(LabError) as failed:
        cluster.kill("app2")
    assert str(failed.value) == (
        f"kubectl delete pod shop-bbbbb --grace-period=0 --force --wait=false: {forbidden}"
    )


def test_up_that_fails_is_a_lab_failure_and_leaves_no_port_forward(
    kubectl: FakeKubectl, cluster: KubernetesCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KUBECTL_FAIL", "port-forward")
    monkeypatch.setenv("FAKE_KUBECTL_ERROR", "unable to listen on any of the requested ports")
    kubectl.answer_pods([RUNNING])
    with pytest.raises(LabFailure) as failed:
        cluster.up("db", db="postgres", port=free_port())
    assert str(failed.value) == (
        "up failed: kubectl port-forward exited: unable to listen on any of the requested ports"
    )
    assert not cluster.forward.pid_file.exists()

    monkeypatch.setenv("FAKE_KUBECTL_FAIL", "apply")
    monkeypatch.setenv("FAKE_KUBECTL_ERROR", "error: no objects passed to apply")
    with pytest.raises(LabFailure, match=r"^up failed: kubectl apply -k .*: error: no objects"):
        cluster.up("db", db="postgres")


def test_a_missing_kubectl_says_where_to_get_one(
    kubectl: FakeKubectl, k8s_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(k8s_driver.KUBECTL_VARIABLE, str(tmp_path / "no-kubectl"))
    with pytest.raises(LabError, match=r"no-kubectl` was not found: `make install` puts kubectl"):
        KubernetesCluster(tmp_path / "run", k8s_dir).kill("redis")


# ---------------------------------------------------------------------- the rest of Driver


def test_the_order_audit_runs_in_a_shop_pod(
    kubectl: FakeKubectl, cluster: KubernetesCluster
) -> None:
    assert cluster.manage("orders_placed", "--since", "1796000000.000") == '{"orders": 0}\n'
    assert kubectl.calls() == [
        ["exec", "deployment/shop", "--", "python", "manage.py", "orders_placed", "--since", "1796000000.000"]
    ]  # fmt: skip


def test_logs_of_every_pod_are_collected_under_the_names_the_lab_gives(
    kubectl: FakeKubectl, cluster: KubernetesCluster
) -> None:
    migrate = pod("migrate-x7k2p", app="migrate")
    migrate["metadata"]["labels"]["job-name"] = "migrate"
    kubectl.answer_pods(
        [[*RUNNING, pod("shop-old", "app2", deleting=True), store("memcached-1", "memcached"), migrate]]
    )  # fmt: skip
    logs = cluster.collect_logs()
    assert logs == cluster.run.root / "pod-logs"
    assert sorted(path.name for path in logs.iterdir()) == [
        "app1.log", "app2.log", "app3.log", "memcached2.log", "prepare-database.log",
        "shop-old.log",
    ]  # fmt: skip
    assert (logs / "memcached2.log").read_text() == "the log of memcached-1\n"
    assert ["logs", "shop-bbbbb", "--all-containers"] in kubectl.calls()


def test_status_reads_the_pods(kubectl: FakeKubectl, cluster: KubernetesCluster) -> None:
    cluster.run.root.mkdir(parents=True)
    cluster.record.write_text(json.dumps({"mode": "sticky", "instances": 3, "port": 18080}))
    kubectl.answer_pods([[RUNNING[0], pod("shop-ddddd", ready=False), store("redis-0", "redis")]])
    state = cluster.status()
    by_name = {p["name"]: p for p in state["processes"]}
    assert list(by_name) == ["app1", "app2", "app3", "shop-ddddd", "redis"]
    assert by_name["app2"]["status"] == "not started" and by_name["app2"]["pod"] is None
    assert by_name["shop-ddddd"]["healthy"] is False
    assert state["phase"] == "degraded" and state["affinity"] == "cookie"


def test_the_driver_is_chosen_by_name(tmp_path: Path) -> None:
    assert DRIVERS == ("native", "compose", "kubernetes")
    cluster = driver_for("kubernetes", tmp_path / ".lab")
    assert isinstance(cluster, KubernetesCluster)
    assert cluster.run.root == (tmp_path / ".lab" / "kubernetes").resolve()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ("--scenario", "hang-one", "--db", "postgres"),
            REFUSED["hang-one"],
        ),
        (
            ("--scenario", "kill-one"),  # the CLI's default database is SQLite
            "--driver kubernetes cannot run --db sqlite: the overlays run the shop on PostgreSQL",
        ),
    ],
)
def test_the_cli_refuses_what_kubernetes_cannot_do_before_it_starts_anything(
    kubectl: FakeKubectl,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    arguments: tuple[str, ...],
    message: str,
) -> None:
    code = main(
        ["experiment", "--driver", "kubernetes", "--modes", "redis", *arguments,
         "--run-dir", str(tmp_path / "lab"), "--out", str(tmp_path / "results")]
    )  # fmt: skip
    assert code == 2
    assert message in capsys.readouterr().err
    assert kubectl.calls() == []  # nothing applied, nothing deleted
    assert not (tmp_path / "results").exists()
