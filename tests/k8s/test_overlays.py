"""deploy/k8s/: each mode's overlay builds, passes the schemas strictly, and runs what the
mode needs -- validated offline; nothing here starts a cluster."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from sessions_lab import cli
from sessions_lab.cluster import k8s_files, serve
from sessions_lab.cluster.compose_files import read_env_file
from sessions_lab.cluster.config import KEY_MAKERS
from sessions_lab.modes import MODE_NAMES, SENTINEL_SERVICE, LoadBalancing, get_mode
from tests.k8s.conftest import container_env, find, kustomize, objects, validate

AFFINITY = "nginx.ingress.kubernetes.io/affinity"


def test_the_committed_manifests_are_what_the_renderer_writes() -> None:
    rendered = k8s_files.k8s_files()
    committed = {
        str(path.relative_to(k8s_files.K8S_DIR))
        for path in k8s_files.K8S_DIR.rglob("*")
        if path.is_file() and path.name != k8s_files.ENV_FILE
    }
    assert committed == set(rendered), "run `sessions-lab render --target k8s --mode db`"
    for name, text in rendered.items():
        assert (k8s_files.K8S_DIR / name).read_text(encoding="utf-8") == text, name


@pytest.mark.parametrize("mode", MODE_NAMES)
def test_each_overlay_passes_the_schemas_strictly(
    built: dict[str, str], k8s_copy: Path, mode: str
) -> None:
    checked = validate(built[mode], k8s_copy)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # A kind without a schema is only a warning to kubernetes-validate: every
    # object must have been checked, and passed.
    passed = re.findall(r"^INFO .* passed for resource (\S+)", checked.stdout, re.M)
    assert len(passed) == len(objects(built[mode])), checked.stdout
    assert "WARN" not in checked.stdout and "ERROR" not in checked.stdout


def test_strict_validation_refuses_a_misspelt_field(built: dict[str, str], k8s_copy: Path) -> None:
    broken = built["db"].replace("readinessProbe:", "readinesProbe:", 1)
    assert broken != built["db"]
    checked = validate(broken, k8s_copy)
    assert checked.returncode != 0
    assert "readinesProbe" in checked.stdout


@pytest.mark.parametrize("mode", MODE_NAMES)
def test_each_overlay_runs_its_mode_and_its_store(built: dict[str, str], mode: str) -> None:
    stream, record = built[mode], get_mode(mode)
    env = container_env(stream, "Deployment", "shop")
    assert env["SESSION_MODE"] == mode
    assert container_env(stream, "Job", "migrate")["SESSION_MODE"] == mode
    servers = {item["metadata"]["name"] for item in find(stream, "StatefulSet")}
    expected = {
        "postgres",
        *(["redis"] if record.uses_redis else []),
        *(["memcached"] if record.uses_memcached else []),
        *(["redis-primary", "sentinel"] if record.uses_replication else []),
    }
    assert servers == expected
    # Each server has its headless Service, the name the shop's variables use.
    for name in servers:
        [service] = find(stream, "Service", name)
        assert service["spec"]["clusterIP"] == "None"
        assert service["spec"]["selector"] == {"app": name}
    if record.uses_redis:
        assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert ("REDIS_URL" in env) is record.uses_redis
    assert ("MEMCACHED_SERVERS" in env) is record.uses_memcached
    assert ("REDIS_SENTINELS" in env) is record.uses_replication
    # Only the replicated mode's shop pods run a replica beside the shop, and read it.
    [deployment] = find(stream, "Deployment", "shop")
    assert ("initContainers" in deployment["spec"]["template"]["spec"]) is record.uses_replication
    assert ("REDIS_REPLICA_URL" in env) is record.uses_replication
    assert env["DATABASE_URL"] == "postgres://lab@postgres:5432/shop"


@pytest.mark.parametrize("mode", MODE_NAMES)
def test_only_an_affinity_mode_pins_clients_to_a_pod(built: dict[str, str], mode: str) -> None:
    [ingress] = find(built[mode], "Ingress", "shop")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    annotations = ingress["metadata"].get("annotations", {})
    if get_mode(mode).load_balancing is LoadBalancing.AFFINITY:
        assert annotations[AFFINITY] == "cookie"
        assert annotations[f"{AFFINITY}-mode"] == "persistent"
        assert annotations["nginx.ingress.kubernetes.io/session-cookie-name"] == "srv_id"
        assert int(annotations["nginx.ingress.kubernetes.io/session-cookie-max-age"]) > 0
    else:
        assert not [key for key in annotations if "affinity" in key or "session-cookie" in key]


@pytest.mark.parametrize("mode", MODE_NAMES)
def test_the_shop_is_probed_on_healthz_with_a_host_django_allows(
    built: dict[str, str], mode: str
) -> None:
    [deployment] = find(built[mode], "Deployment", "shop")
    assert deployment["spec"]["replicas"] == 3
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    allowed = container_env(built[mode], "Deployment", "shop")["ALLOWED_HOSTS"].split(",")
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz"
        assert get["port"] == "http"
        [host] = [h["value"] for h in get["httpHeaders"] if h["name"] == "Host"]
        assert host in allowed
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 8000}


@pytest.mark.parametrize("mode", MODE_NAMES)
def test_generated_names_are_the_ones_referenced(built: dict[str, str], mode: str) -> None:
    """kustomize suffixes a generated ConfigMap or Secret with its hash: every reference
    must name the suffixed object that the overlay outputs."""
    stream = built[mode]
    names = {(item["kind"], item["metadata"]["name"]) for item in objects(stream)}
    references = re.findall(
        r'"(configMapRef|configMapKeyRef|secretKeyRef|configMap)": \{[^}]*"name": "([^"]+)"',
        json.dumps(objects(stream)),
    )
    assert references
    for field, name in references:
        kind = "Secret" if field == "secretKeyRef" else "ConfigMap"
        assert (kind, name) in names, (field, name)
    [secret] = find(stream, "Secret")
    assert set(secret["data"]) == set(KEY_MAKERS)


@pytest.mark.parametrize("mode", MODE_NAMES)
def test_every_overlay_runs_locust_as_a_master_and_two_workers(
    built: dict[str, str], mode: str
) -> None:
    stream = built[mode]
    [master] = find(stream, "Deployment", "locust")
    [workers] = find(stream, "Deployment", "locust-worker")
    [service] = find(stream, "Service", "locust")
    assert master["spec"]["replicas"] == 1
    assert master["spec"]["template"]["metadata"]["labels"] == {"app": "locust"}
    assert workers["spec"]["template"]["metadata"]["labels"] == {"app": "locust-worker"}
    [server] = master["spec"]["template"]["spec"]["containers"]
    assert server["command"] == ["locust"]
    assert "--master" in server["args"]
    host = server["args"][server["args"].index("--host") + 1]
    assert host == "http://ingress-nginx-controller.ingress-nginx"
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports == {"web": 8089, "workers": 5557}
    assert server["readinessProbe"]["tcpSocket"]["port"] == "web"
    assert workers["spec"]["replicas"] == 2
    [worker] = workers["spec"]["template"]["spec"]["containers"]
    assert worker["command"] == ["locust"]
    assert " --worker --master-host locust" in " " + " ".join(worker["args"])
    assert "--master" not in worker["args"] and "--host" not in worker["args"]
    # The workers reach the master, and only the master, on 5557; the web UI on 8089.
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert service["spec"]["selector"] == master["spec"]["template"]["metadata"]["labels"]
    assert {p["port"]: p["targetPort"] for p in service["spec"]["ports"]} == {
        5557: "workers",
        8089: "web",
    }
    # Both know the demo users and their password, as the shop does.
    for name in ("locust", "locust-worker"):
        env = container_env(stream, "Deployment", name)
        assert env["LOCUST_DEMO_USERS"] == "10"
        assert "configMapKeyRef" in env["DEMO_PASSWORD"]


def test_memcached_nodes_are_listed_as_the_stateful_set_names_them(built: dict[str, str]) -> None:
    stream = built["memcached"]
    [nodes] = find(stream, "StatefulSet", "memcached")
    [service] = find(stream, "Service", "memcached")
    servers = container_env(stream, "Deployment", "shop")["MEMCACHED_SERVERS"].split(",")
    # A StatefulSet's pods are <name>-0..N-1, each <pod>.<service> in the cluster's DNS.
    assert servers == [
        f"memcached-{n}.{service['metadata']['name']}:11211"
        for n in range(nodes["spec"]["replicas"])
    ]
    assert nodes["spec"]["replicas"] == 3  # one per instance, as compose runs them
    assert service["spec"]["publishNotReadyAddresses"] is True


# ---------------------------------------------------------------------- the replicated store


def mounted_file(stream: str, pod: dict[str, Any], container: dict[str, Any], path: str) -> str:
    """The file at ``path`` in ``container``: from the ConfigMap mounted on its folder."""
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == str(Path(path).parent)]
    assert mount["readOnly"] is True
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    [config_map] = find(stream, "ConfigMap", volume["configMap"]["name"])
    return str(config_map["data"][Path(path).name])


def directive(conf: str, name: str) -> list[str]:
    """The values of every ``name …`` line of a Valkey or Sentinel file."""
    return re.findall(rf"^{name} (.*)$", conf, re.M)


def test_each_shop_pod_reads_its_own_replica_of_the_primary(built: dict[str, str]) -> None:
    stream = built["replicated"]
    [deployment] = find(stream, "Deployment", "shop")
    pod = deployment["spec"]["template"]["spec"]
    [replica] = pod["initContainers"]
    # A sidecar: started before the shop container, and running beside it.
    assert replica["restartPolicy"] == "Always"
    conf = mounted_file(stream, pod, replica, replica["command"][-1])
    assert replica["command"][:-1] == ["python", "-m", "sessions_lab.cluster.serve", "redis"]
    # A replica of the primary by the name of its headless Service, which is its pod.
    [primary_host_port] = directive(conf, "replicaof")
    host, port = primary_host_port.split()
    [service] = find(stream, "Service", host)
    [primary] = find(stream, "StatefulSet", host)
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == primary["spec"]["template"]["metadata"]["labels"]
    assert primary["spec"]["replicas"] == 1
    [server] = primary["spec"]["template"]["spec"]["containers"]
    assert [p["containerPort"] for p in server["ports"]] == [int(port)]
    primary_conf = mounted_file(
        stream, primary["spec"]["template"]["spec"], server, server["command"][-1]
    )
    assert directive(primary_conf, "replicaof") == []
    # No name of its own to announce: the primary sees the pod's address, which the
    # Sentinels reach, so the replica listens on every interface of the pod.
    assert directive(conf, "replica-announce-ip") == []
    assert directive(conf, "bind") == ["0.0.0.0"]  # noqa: S104 - what the file says
    # The shop container reads that replica, over the pod's loopback.
    url = urlsplit(container_env(stream, "Deployment", "shop")["REDIS_REPLICA_URL"])
    [replica_port] = replica["ports"]
    assert (url.scheme, url.hostname) == ("redis", "127.0.0.1")
    assert url.port == replica_port["containerPort"] == int(directive(conf, "port")[0])
    # compose's health check holds the shop back until the replica has the data; no
    # readiness probe, which would take every shop pod out of the Service in a failover.
    assert replica["startupProbe"]["exec"]["command"][-2:] == ["ready", "replica"]
    assert "readinessProbe" not in replica and "livenessProbe" not in replica
    # The migrate Job has no replica, and is told of none.
    assert "REDIS_REPLICA_URL" not in container_env(stream, "Job", "migrate")


def test_three_sentinels_watch_the_primary_by_name_with_a_quorum_of_two(
    built: dict[str, str],
) -> None:
    stream = built["replicated"]
    [sentinels] = find(stream, "StatefulSet", "sentinel")
    [service] = find(stream, "Service", "sentinel")
    assert sentinels["spec"]["replicas"] == 3
    assert sentinels["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    env = container_env(stream, "Deployment", "shop")
    listed = env["REDIS_SENTINELS"].split(",")
    # A StatefulSet's pods are <name>-0..N-1, each <pod>.<service> in the cluster's DNS.
    assert listed == [f"sentinel-{n}.sentinel:26379" for n in range(3)]
    settings = get_mode("replicated").settings(env)["SESSION_REPLICATION"]
    assert settings["SENTINELS"] == [
        ("sentinel-0.sentinel", 26379),
        ("sentinel-1.sentinel", 26379),
        ("sentinel-2.sentinel", 26379),
    ]
    pod = sentinels["spec"]["template"]["spec"]
    [server] = pod["containers"]
    # Each pod runs its own file, by its pod name.
    assert server["command"][-1].endswith("/$(POD_NAME).conf")
    assert {
        "name": "POD_NAME",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
    } in server["env"]
    assert [p["containerPort"] for p in server["ports"]] == [26379]
    for n, address in enumerate(listed):
        name, port = address.split(":")
        conf = mounted_file(
            stream, pod, server, server["command"][-1].replace("$(POD_NAME)", f"sentinel-{n}")
        )
        assert directive(conf, "sentinel monitor") == [
            f"{settings['SERVICE']} redis-primary 6379 2"
        ]
        assert settings["SERVICE"] == SENTINEL_SERVICE
        # It announces the name the shop lists, and resolves the others' names.
        assert directive(conf, "sentinel announce-ip") == [name]
        assert directive(conf, "sentinel resolve-hostnames") == ["yes"]
        assert directive(conf, "sentinel announce-hostnames") == ["yes"]
        assert directive(conf, "port") == [port]
        assert directive(conf, "dir") == [str(serve.SENTINEL_CONF.parent)]
    # Sentinel rewrites its file: `serve sentinel` copies it into /data, which must be
    # writable and outlive a restart of the container (an emptyDir).
    [data] = [
        m for m in server["volumeMounts"] if m["mountPath"] == str(serve.SENTINEL_CONF.parent)
    ]
    assert not data.get("readOnly")
    [volume] = [v for v in pod["volumes"] if v["name"] == data["name"]]
    assert volume == {"name": data["name"], "emptyDir": {}}
    assert server["readinessProbe"]["exec"]["command"][-2:] == ["ready", "sentinel"]


def test_without_its_keys_an_overlay_does_not_build(tmp_path: Path) -> None:
    k8s_files.render_k8s(tmp_path)
    result = kustomize(tmp_path / "overlays" / "redis", tmp_path)
    assert result.returncode != 0
    assert k8s_files.ENV_FILE in result.stderr


# ---------------------------------------------------------------------- the render command


@pytest.fixture
def k8s_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    k8s = tmp_path / "k8s"
    monkeypatch.setattr(k8s_files, "K8S_DIR", k8s)
    return k8s


def test_render_writes_the_manifests_and_private_keys_made_once(
    k8s_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["render", "--target", "k8s", "--mode", "redis"]) == 0
    env_file = k8s_dir / "overlays" / "redis" / k8s_files.ENV_FILE
    assert f"kubectl apply -k {env_file.parent}" in capsys.readouterr().out
    assert env_file.stat().st_mode & 0o077 == 0
    keys = read_env_file(env_file)
    assert set(keys) == set(KEY_MAKERS) and all(keys.values())
    assert keys["SECRET_KEY"] != keys["JWT_SIGNING_KEY"]
    assert {str(p.relative_to(k8s_dir)) for p in k8s_dir.rglob("*") if p.is_file()} == {
        *k8s_files.k8s_files(),
        f"overlays/redis/{k8s_files.ENV_FILE}",
    }
    assert cli.main(["render", "--target", "k8s", "--mode", "redis"]) == 0
    assert read_env_file(env_file) == keys  # a deployment's users keep their sessions
    assert not (k8s_dir / "overlays" / "db" / k8s_files.ENV_FILE).exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "--target k8s needs --mode"),
        (["--mode", "sticky", "--affinity", "ip"], "--affinity: --target compose only"),
        (["--mode", "db", "--port", "8081"], "--port: --target compose only"),
    ],
)
def test_render_refuses_what_the_k8s_target_cannot_do(
    k8s_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert cli.main(["render", "--target", "k8s", *argv]) == 2
    assert message in capsys.readouterr().err
    assert not k8s_dir.exists()
