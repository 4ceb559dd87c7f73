"""The Kubernetes overlays run the lab the native cluster and compose run: the same
variables for every instance, the same image, gunicorn and migrate command, the same
servers with the same files -- addresses, the instance's name and the keys aside (those
come from the pod and its Secret)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from sessions_lab.cluster import k8s_forward, k8s_objects, replication
from sessions_lab.cluster.apps import prepare_database_argv
from sessions_lab.cluster.binaries import find_binary
from sessions_lab.cluster.compose_files import (
    DEPLOY_DIR,
    compose_services,
    replica_services,
    replication_conf,
    sentinel_services,
)
from sessions_lab.modes import MODE_NAMES
from tests.compose.test_parity import (
    ANNOUNCE_LINE,
    native_config,
    native_environment,
    native_run,
    without_address,
    without_addresses,
)
from tests.k8s.conftest import container_env, find

# From the pod (its name) and the Secret: the names must match, the values cannot.
FROM_THE_POD = ("INSTANCE_NAME", "SECRET_KEY", "JWT_SIGNING_KEY")


@pytest.mark.parametrize("mode", MODE_NAMES)
def test_the_shop_gets_the_native_environment(
    built: dict[str, str], tmp_path: Path, mode: str
) -> None:
    # Kubernetes runs PostgreSQL: compare with the native lab's `up --db postgres`.
    config = native_config(mode, "cookie" if mode == "sticky" else "none", "postgres")
    run = native_run(tmp_path)
    native = native_environment(config, run, "app1")
    pod = container_env(built[mode], "Deployment", "shop")
    assert pod.keys() == native.keys()
    for name in FROM_THE_POD:  # test_the_instance_name_and_the_keys_come_from_…
        pod.pop(name)
        native.pop(name)
    # One host more than natively: the ingress controller's name, the Host of Locust's
    # requests (test_locust_runs_compose_s_master_and_workers), as compose adds `nginx`.
    assert set(pod.pop("ALLOWED_HOSTS").split(",")) == {
        *native.pop("ALLOWED_HOSTS").split(","),
        k8s_objects.INGRESS,
    }
    if "REDIS_REPLICA_URL" in native:
        # Each instance reads its own replica: natively on loopback at its replica's own
        # port, here on its pod's loopback, where the pod's replica listens on Valkey's
        # port (test_each_shop_pod_reads_its_own_replica_…). The address aside, the same.
        assert pod["REDIS_REPLICA_URL"] != native["REDIS_REPLICA_URL"] != ""
    assert {k: without_address(k, v) for k, v in pod.items()} == {
        k: without_address(k, v) for k, v in native.items()
    }


@pytest.mark.parametrize("mode", MODE_NAMES)
def test_the_instance_name_and_the_keys_come_from_the_pod_and_its_secret(
    built: dict[str, str], mode: str
) -> None:
    [deployment] = find(built[mode], "Deployment", "shop")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    sources = {v["name"]: v.get("valueFrom") for v in container["env"]}
    # And in the replicated mode the address of the pod's own replica (the pod's, not the ConfigMap's).
    assert set(sources) == {*FROM_THE_POD, *(["REDIS_REPLICA_URL"] if mode == "replicated" else [])}
    assert sources["INSTANCE_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    [secret] = find(built[mode], "Secret")
    for key in ("SECRET_KEY", "JWT_SIGNING_KEY"):
        assert sources[key] == {"secretKeyRef": {"name": secret["metadata"]["name"], "key": key}}


def test_the_image_and_gunicorn_are_compose_s(built: dict[str, str]) -> None:
    services = compose_services()
    [deployment] = find(built["db"], "Deployment", "shop")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert services["app1"]["image"] == "${LAB_IMAGE:-" + container["image"] + "}"
    # The Dockerfile's CMD, which compose's app services run: deploy/gunicorn.conf.py
    # sizes the workers from SESSION_MODE (tests/compose: the native flags).
    dockerfile = (DEPLOY_DIR / "Dockerfile").read_text(encoding="utf-8")
    [cmd] = re.findall(r"^CMD (\[.*\])$", dockerfile, re.M)
    assert container["command"] == json.loads(cmd) == k8s_objects.DOCKERFILE_CMD


def test_migrate_runs_the_native_prepare_script(built: dict[str, str]) -> None:
    [job] = find(built["db"], "Job", "migrate")
    [container] = job["spec"]["template"]["spec"]["containers"]
    native = prepare_database_argv(native_config("db", "none"))  # 10 demo users, as compose
    assert container["command"] == ["python", *native[1:]]
    assert container_env(built["db"], "Job", "migrate")["INSTANCE_NAME"] == "prepare-database"


@pytest.mark.parametrize(
    ("statefulset", "service"),
    [
        ("postgres", "postgres"),
        ("redis", "redis"),
        ("memcached", "memcached1"),
        ("redis-primary", "redis-primary"),
    ],
)
def test_the_servers_run_compose_s_commands_and_health_checks(
    built: dict[str, str], statefulset: str, service: str
) -> None:
    stream = next(s for s in built.values() if find(s, "StatefulSet", statefulset))
    [server] = find(stream, "StatefulSet", statefulset)
    [container] = server["spec"]["template"]["spec"]["containers"]
    compose = compose_services()[service]
    assert container["command"] == k8s_objects.defaults(compose["command"])
    assert ["CMD", *container["readinessProbe"]["exec"]["command"]] == compose["healthcheck"][
        "test"
    ]
    for mount in container.get("volumeMounts", []):
        if mount["name"] == "conf":  # the rendered configuration, where compose binds it
            assert Path(container["command"][-1]).parent == Path(mount["mountPath"])


def only_difference(k8s: list[str], compose: list[str]) -> tuple[str, str]:
    """The one argument where ``k8s`` differs from ``compose``: (compose's, k8s's)."""
    assert len(k8s) == len(compose), (k8s, compose)
    [changed] = [(c, k) for k, c in zip(k8s, compose, strict=True) if k != c]
    return changed


def test_locust_runs_compose_s_master_and_workers(built: dict[str, str]) -> None:
    """compose's `locust` (the master) and `locust-worker`: the same image, entrypoint and
    command, the host and the master's name aside; as many workers; the same variables."""
    stream, services = built["db"], compose_services()
    [shop] = find(built["db"], "Deployment", "shop")
    image = shop["spec"]["template"]["spec"]["containers"][0]["image"]
    pods = {}
    for name in ("locust", "locust-worker"):
        [deployment] = find(stream, "Deployment", name)
        [pods[name]] = deployment["spec"]["template"]["spec"]["containers"]
        assert pods[name]["image"] == image
        assert pods[name]["command"] == services[name]["entrypoint"] == ["locust"]
        # The variables: compose's defaults, DEMO_PASSWORD from the shop's own ConfigMap.
        env = container_env(stream, "Deployment", name)
        assert env.pop("DEMO_PASSWORD").startswith("<from {'configMapKeyRef'")
        assert env == {
            key: k8s_objects.defaults(value)
            for key, value in services[name]["environment"].items()
            if key != "DEMO_PASSWORD"
        }
        [config_map] = find(stream, "ConfigMap")
        assert config_map["data"]["DEMO_PASSWORD"] == k8s_objects.defaults(
            services[name]["environment"]["DEMO_PASSWORD"]
        )
        # As many demo users as the migrate Job makes.
        [job] = find(stream, "Job", "migrate")
        script = job["spec"]["template"]["spec"]["containers"][0]["command"][-1]
        assert f"'create_demo_users', '{env['LOCUST_DEMO_USERS']}'" in script
    # The master: compose's command with ingress-nginx's controller for nginx (port 80),
    # the Service the driver forwards to: the load takes the way the shoppers' does.
    master = pods["locust"]
    assert "--master" in master["args"]
    nginx, host = only_difference(master["args"], services["locust"]["command"])
    assert master["args"][master["args"].index("--host") + 1] == host
    assert urlsplit(nginx).hostname == "nginx"
    name, namespace = (
        k8s_forward.INGRESS_SERVICE.removeprefix("service/"),
        k8s_forward.INGRESS_NAMESPACE,
    )
    assert urlsplit(host).hostname == f"{name}.{namespace}"
    assert urlsplit(host).port is None and urlsplit(host).scheme == "http"
    assert urlsplit(host).hostname in container_env(stream, "Deployment", "shop")[
        "ALLOWED_HOSTS"
    ].split(",")
    # The web UI on the port compose publishes.
    published = int(services["locust"]["ports"][0].rsplit(":", 1)[1])
    assert {p["name"]: p["containerPort"] for p in master["ports"]}["web"] == published
    # The workers: compose's command, the master by the name of the Service in front of
    # the master's pods (which is compose's name for it too); as many as compose runs.
    [master_deployment] = find(stream, "Deployment", "locust")
    labels = master_deployment["spec"]["template"]["metadata"]["labels"]
    [master_service] = [s for s in find(stream, "Service") if s["spec"].get("selector") == labels]
    compose = services["locust-worker"]
    at = compose["command"].index("--master-host") + 1
    assert pods["locust-worker"]["args"] == [
        *compose["command"][:at],
        master_service["metadata"]["name"],
        *compose["command"][at + 1 :],
    ]
    [worker_deployment] = find(stream, "Deployment", "locust-worker")
    replicas = int(k8s_objects.defaults(compose["deploy"]["replicas"]))
    assert worker_deployment["spec"]["replicas"] == replicas == 2


# ---------------------------------------------------------------------- the replicated store


def mounted_confs(stream: str, pod: dict[str, Any]) -> dict[str, str]:
    """The files of the ConfigMap mounted as ``pod``'s configuration folder."""
    [volume] = [v for v in pod["volumes"] if "configMap" in v]
    [config_map] = find(stream, "ConfigMap", volume["configMap"]["name"])
    return dict(config_map["data"])


def test_the_replicated_store_runs_compose_s_servers_and_the_native_files(
    built: dict[str, str], tmp_path: Path
) -> None:
    """What compose's test_replicated_servers_are_the_native_ones checks, for the pods: the
    same command and health check as compose's, and the same file, addresses aside."""
    stream = built["replicated"]
    services = compose_services()
    config = native_config("replicated", "none")
    run = native_run(tmp_path)
    valkey = find_binary("redis")

    def native_conf(name: str) -> str:
        spec_of = (
            replication.sentinel_spec if name.startswith("sentinel") else replication.server_spec
        )
        return Path(spec_of(config, run, valkey, name).argv[1]).read_text()

    # The primary: compose's file itself (announcing the name its Service gives it).
    [primary] = find(stream, "StatefulSet", replication.PRIMARY)
    confs = mounted_confs(stream, primary["spec"]["template"]["spec"])
    assert confs[f"{replication.PRIMARY}.conf"] == replication_conf(replication.PRIMARY)
    # Each instance's replica, in its pod: compose's app1-replica, with no name to announce.
    [deployment] = find(stream, "Deployment", "shop")
    [sidecar] = deployment["spec"]["template"]["spec"]["initContainers"]
    compose = services[replica_services()[0]]
    file = Path(sidecar["command"][-1]).name
    assert sidecar["command"] == [
        *compose["command"][:-1],
        str(Path(compose["command"][-1]).parent / file),
    ]
    assert ["CMD", *sidecar["startupProbe"]["exec"]["command"]] == compose["healthcheck"]["test"]
    replica = confs[file]
    assert without_addresses(replica) == without_addresses(replication_conf("app1-replica"))
    assert without_addresses(replica) == without_addresses(native_conf("app1-replica"))
    assert ANNOUNCE_LINE.findall(replica) == []
    assert mounted_confs(stream, deployment["spec"]["template"]["spec"]) == confs
    # The Sentinels: compose's command on the pod's own file, compose's check, the same
    # file as compose's sentinelN, each announcing its pod's name instead of a service's.
    [sentinels] = find(stream, "StatefulSet", "sentinel")
    [server] = sentinels["spec"]["template"]["spec"]["containers"]
    for n, name in enumerate(sentinel_services()):
        compose = services[name]
        pod_file = server["command"][-1].replace("$(POD_NAME)", f"sentinel-{n}")
        assert pod_file == str(Path(compose["command"][-1]).parent / f"sentinel-{n}.conf")
        assert server["command"][:-1] == compose["command"][:-1]
        assert ["CMD", *server["readinessProbe"]["exec"]["command"]] == compose["healthcheck"][
            "test"
        ]
        conf = confs[Path(pod_file).name]
        assert without_addresses(conf) == without_addresses(replication_conf(name))
        assert without_addresses(conf) == without_addresses(native_conf(name))
        assert [found[1] for found in ANNOUNCE_LINE.findall(conf)] == [f"sentinel-{n}.sentinel"]
