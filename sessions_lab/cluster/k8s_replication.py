"""The ``replicated`` store on Kubernetes: the primary, the Sentinels, a replica in each shop pod.

compose's servers (``redis-primary``, ``appN-replica``, ``sentinelN`` of
``deploy/docker-compose.yml``), with compose's commands and health checks and
the native templates' files, placed as Kubernetes places things:

- The primary: a StatefulSet of one pod behind the headless Service
  ``redis-primary``, the name compose's files give it, which resolves to that
  pod: its file is compose's own (it announces ``redis-primary`` once it is a
  replica), and the replicas and Sentinels reach it by that name.
- Each instance's own replica: a sidecar of its shop pod (a restartable init
  container, which the replicated overlay's patch adds to the ``shop``
  Deployment), read by the shop on 127.0.0.1 as a native instance reads its
  own. A Deployment's pod has no name of its own, so the replica announces
  none: the primary, and the Sentinels through it, know it by the pod's
  address, which every pod reaches. It starts before the shop and, like
  compose's ``depends_on``, holds the shop back until it has the primary's data
  (a startup probe: ``serve ready replica``). That check is no readiness probe:
  during a failover every replica loses its primary at once, and a readiness
  probe would then take every shop pod out of the Service, when reading on
  through the failover is what the replicas are for.
- The Sentinels: a StatefulSet ``sentinel``, ``sentinel-0``..``2``, each one
  announcing ``sentinel-N.sentinel``, the names REDIS_SENTINELS lists, and
  monitoring ``redis-primary`` by name (the template's ``resolve-hostnames``:
  a pod started again, with a new address, is found again). One file per pod,
  picked by the pod's name; ``serve sentinel`` runs each on a writable copy in
  an emptyDir, so a Sentinel whose container restarts remembers what it learnt,
  as compose's restarted container does, and a new pod starts afresh.

What Kubernetes adds: a shop pod deleted takes its replica with it (compose's
``kill app1`` leaves ``app1-replica`` running), and if the Sentinels had made
that replica the primary, they fail over again; the Sentinels keep listing a
deleted pod's replica, down, until ``SENTINEL RESET``. A pod added by a
scale-up gets a replica of its own (natively, ``add app4`` gets none).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sessions_lab.cluster.compose_files import (
    REPLICATED_PORT,
    REPLICATION_DATA_DIR,
    SENTINEL_PORT,
    replica_services,
    replication_conf,
    sentinel_services,
)
from sessions_lab.cluster.k8s_objects import (
    SENTINEL,
    SHOP,
    compose_service,
    conf_map,
    config_mount,
    container,
    defaults,
    headless_service,
    probed,
    ready_command,
    sentinel_pods,
    stateful_set,
)
from sessions_lab.cluster.replication import PRIMARY, sentinel_conf, server_conf

STORE = "replicated"  # stores/replicated/, and its ConfigMap
REPLICA = "replica"  # the sidecar's container name
REPLICA_CONF = "replica.conf"  # one file for every pod's replica: none announces a name
POD_NAME = "POD_NAME"  # a Sentinel's variable: its file is $(POD_NAME).conf
# Every interface of the pod: the Sentinels, and the other replicas after a
# failover, reach a server by the pod's address; only the cluster reaches it.
BIND = "0.0.0.0"  # noqa: S104
# How long a replica may take to get the primary's data before the kubelet
# restarts it (the primary's pod may start after the shop's): five minutes.
REPLICA_STARTUP = {"periodSeconds": 5, "failureThreshold": 60}


def conf_dir() -> Path:
    """Where compose binds ``deploy/replication/``, and the ConfigMap is mounted."""
    return Path(compose_service(PRIMARY)["command"][-1]).parent


def compose_command(service: str, conf: str) -> list[str]:
    """compose's command for ``service``, run on the ConfigMap's file ``conf``."""
    command = defaults(compose_service(service)["command"])
    return [*command[:-1], str(conf_dir() / conf)]


def replica_url() -> str:
    """The shop container's REDIS_REPLICA_URL: its own pod's replica, on loopback."""
    return f"redis://127.0.0.1:{REPLICATED_PORT}/0"


def confs() -> dict[str, str]:
    """The ConfigMap's files: compose's primary, the replicas' one, one per Sentinel pod."""
    primary = (PRIMARY, REPLICATED_PORT)
    files = {
        f"{PRIMARY}.conf": replication_conf(PRIMARY),
        REPLICA_CONF: server_conf(BIND, REPLICATED_PORT, REPLICATION_DATA_DIR, primary),
    }
    for pod in sentinel_pods():
        files[f"{pod}.conf"] = sentinel_conf(
            BIND, SENTINEL_PORT, REPLICATION_DATA_DIR, primary, announce=f"{pod}.{SENTINEL}"
        )
    return files


def replicated_objects() -> tuple[list[tuple[str, dict[str, Any]]], dict[str, str]]:
    """``stores/replicated/``: the primary and the Sentinels, and the files they read."""
    conf_path = str(conf_dir())
    primary = probed(
        container(PRIMARY, compose_command(PRIMARY, f"{PRIMARY}.conf"), REPLICATED_PORT), PRIMARY
    )
    primary_pod = config_mount(primary, conf_map(STORE), conf_path)
    like = sentinel_services()[0]  # compose's sentinel1: every Sentinel's command and check
    sentinel = container(SENTINEL, compose_command(like, f"$({POD_NAME}).conf"), SENTINEL_PORT)
    sentinel["env"] = [
        {"name": POD_NAME, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    ]
    probed(sentinel, like)
    sentinel_pod = config_mount(sentinel, conf_map(STORE), conf_path)
    # Writable, and kept while the pod lives: `serve sentinel`'s copy, which Sentinel rewrites.
    sentinel["volumeMounts"].append({"name": "data", "mountPath": REPLICATION_DATA_DIR})
    sentinel_pod["volumes"].append({"name": "data", "emptyDir": {}})
    objects = [
        (
            f"Headless: {PRIMARY}:{REPLICATED_PORT} is the pod itself, the name compose's files\n"
            "give the primary (replicaof, sentinel monitor).",
            headless_service(PRIMARY, REPLICATED_PORT),
        ),
        (
            f"compose's {PRIMARY} service and configuration, mounted where compose binds it.\n"
            "No persistence: started again it comes back empty, as a primary, until the\n"
            "Sentinels make it a replica of the one they promoted. Each replica runs in its\n"
            "instance's pod (the replicated overlay's patch of the shop Deployment).",
            stateful_set(PRIMARY, primary, pod=primary_pod),
        ),
        (
            "Headless: sentinel-N.sentinel is the pod itself. A Sentinel keeps its name while it\n"
            "is not ready: it announces that name to the others as it starts, and the shop's\n"
            "client skips a Sentinel that does not answer, as with compose's fixed addresses.",
            headless_service(SENTINEL, SENTINEL_PORT, publishNotReadyAddresses=True),
        ),
        (
            "compose's Sentinels: each pod runs its own file ($(POD_NAME).conf: it announces\n"
            "its pod's name) from a writable copy in /data, an emptyDir that outlives a\n"
            "restart of the container, not of the pod. Two of them must agree to fail over.",
            stateful_set(
                SENTINEL,
                sentinel,
                len(sentinel_pods()),
                podManagementPolicy="Parallel",
                pod=sentinel_pod,
            ),
        ),
    ]
    return objects, confs()


def replica_patch() -> dict[str, Any]:
    """The overlay's patch of the shop Deployment: each pod's replica, and the shop reading it."""
    like = replica_services()[0]  # compose's app1-replica: every replica's command and check
    replica = container(REPLICA, compose_command(like, REPLICA_CONF), REPLICATED_PORT)
    # A sidecar: started before the shop, running beside it, stopped after it.
    replica["restartPolicy"] = "Always"
    replica["startupProbe"] = {"exec": {"command": ready_command(like)}, **REPLICA_STARTUP}
    volumes = config_mount(replica, conf_map(STORE), str(conf_dir()), volume="replica-conf")
    shop = {"name": SHOP, "env": [{"name": "REDIS_REPLICA_URL", "value": replica_url()}]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": SHOP},
        "spec": {
            "template": {"spec": {"initContainers": [replica], "containers": [shop], **volumes}}
        },
    }
