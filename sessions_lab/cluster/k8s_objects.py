"""The Kubernetes objects of ``deploy/k8s/`` (``k8s_files`` writes them into files).

Commands, health checks and server configurations are compose's own
(``deploy/docker-compose.yml`` with its defaults, ``compose_files``), and the
variables those of ``apps.app_env`` (tests/k8s checks both), so the three
targets run the same servers alike; only addresses differ.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sessions_lab.cluster.compose_files import (
    APP_PORT,
    MEMCACHED_PORT,
    POSTGRES_URL,
    REDIS_PORT,
    SENTINEL_PORT,
    app_services,
    compose_services,
    sentinel_services,
)
from sessions_lab.cluster.config import ShopOptions
from sessions_lab.cluster.redis import render_redis_conf
from sessions_lab.modes import get_mode

SHOP = "shop"  # the Deployment, its Service, Ingress and pod label (app=shop)
# ingress-nginx's controller Service (its standard install), as pods name it: Locust's host.
INGRESS = "ingress-nginx-controller.ingress-nginx"
SECRETS = "shop-secrets"
SHOP_ENV = "shop-env"
SECRET_VARIABLES = ("SECRET_KEY", "JWT_SIGNING_KEY")
SENTINEL = "sentinel"  # the replicated store's Sentinels: StatefulSet, headless Service, label
LOCUST = "locust"  # Locust's master: Deployment, Service and label, as compose's service
LOCUST_WORKER = "locust-worker"  # its workers: Deployment and label, as compose's service
LOCUST_MASTER_PORT = 5557  # Locust's --master-bind-port, where the workers connect


def defaults(value: Any) -> Any:
    """A compose value with every ``${VAR:-default}`` replaced by its default."""
    if isinstance(value, list):
        return [defaults(item) for item in value]
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value) if isinstance(value, str) else value


def compose_service(name: str) -> dict[str, Any]:
    return compose_services()[name]


def image() -> str:
    """The image compose builds from deploy/Dockerfile (LAB_IMAGE's default)."""
    return defaults(compose_service("app1")["image"])


def ready_command(service: str) -> list[str]:
    """Compose's health check of ``service`` (``serve ready …``), as an exec probe."""
    test = compose_service(service)["healthcheck"]["test"]
    return test[1:]  # without "CMD"


def store_of(mode: str) -> str | None:
    """The folder under ``stores/`` a mode's overlay adds, if its state lives on a server."""
    record = get_mode(mode)
    if record.uses_redis:
        return "redis"
    if record.uses_memcached:
        return "memcached"
    if record.uses_replication:
        return "replicated"
    return None


def memcached_nodes() -> int:
    """One node per instance, as compose and the native lab run them."""
    return len(app_services())


def sentinel_pods() -> list[str]:
    """``sentinel-0``..``sentinel-N-1``: as many Sentinels as compose runs, named by their StatefulSet."""
    return [f"{SENTINEL}-{n}" for n in range(len(sentinel_services()))]


def conf_map(store: str) -> str:
    """The ConfigMap of a store's configuration files (``stores/<store>/*.conf``)."""
    return f"{store}-conf"


def shop_env() -> dict[str, str]:
    """What every instance of every mode is given besides its name and keys (the base)."""
    return {
        "DJANGO_SETTINGS_MODULE": "sessions_lab.settings",
        # PostgreSQL, not compose's default SQLite: the pods need not share a volume.
        "DATABASE_URL": POSTGRES_URL,
        # The shop options at their defaults (encryption off), as in deploy/.env.example.
        **ShopOptions().env(""),
        "COOKIE_SECURE": "0",  # plain http behind the Ingress, as natively
        "DEBUG": "0",
        # What `kubectl port-forward` to the ingress controller sends, the probes too;
        # and the ingress controller's name, the Host of Locust's requests (compose's `nginx`).
        "ALLOWED_HOSTS": f"127.0.0.1,localhost,{INGRESS}",
        "DEMO_PASSWORD": "demo-password",
        "LAB_DASHBOARD_URL": "",
        "PYTHONUNBUFFERED": "1",
    }


def mode_env(mode: str) -> dict[str, str]:
    """What an overlay adds: the mode, and where its store's servers are."""
    env = {"SESSION_MODE": mode}
    store = store_of(mode)
    if store == "redis":
        env["REDIS_URL"] = f"redis://redis:{REDIS_PORT}/0"
    elif store == "memcached":
        # Every node by its StatefulSet name, in order: every instance hashes alike.
        env["MEMCACHED_SERVERS"] = ",".join(
            f"memcached-{n}.memcached:{MEMCACHED_PORT}" for n in range(memcached_nodes())
        )
    elif store == "replicated":
        # Each Sentinel by its StatefulSet name, the one it announces to the others.
        env["REDIS_SENTINELS"] = ",".join(
            f"{pod}.{SENTINEL}:{SENTINEL_PORT}" for pod in sentinel_pods()
        )
        env["SESSION_REPLICATION"] = "async"
        # REDIS_REPLICA_URL is the shop container's own (its pod's replica: the
        # overlay's patch), as in compose each app service has its own.
    return env


# ---------------------------------------------------------------------- objects


def container(name: str, command: list[str], port: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "image": image(), "command": command}
    if port is not None:
        spec["ports"] = [{"name": name, "containerPort": port}]
    return spec


def instance_env(instance: dict[str, Any]) -> dict[str, Any]:
    """The app's variables: the ConfigMap, the instance's name and the keys."""
    keys = [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": SECRETS, "key": key}}}
        for key in SECRET_VARIABLES
    ]
    return {
        "envFrom": [{"configMapRef": {"name": SHOP_ENV}}],
        "env": [{"name": "INSTANCE_NAME", **instance}, *keys],
    }


def cluster_service(name: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
    """A Service in front of the pods labelled ``app: name``, on one cluster address."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": ports},
    }


def headless_service(name: str, port: int, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "clusterIP": "None",
            "selector": {"app": name},
            "ports": [{"name": name, "port": port}],
            **spec,
        },
    }


def stateful_set(
    name: str, server: dict[str, Any], replicas: int = 1, **spec: Any
) -> dict[str, Any]:
    return workload("StatefulSet", name, server, replicas, {"serviceName": name}, **spec)


def workload(
    kind: str,
    name: str,
    server: dict[str, Any],
    replicas: int,
    lead: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A Deployment or StatefulSet of ``replicas`` pods labelled app=NAME running ``server``;
    ``lead``: spec fields before the rest, ``pod``: the pod spec's besides its containers."""
    pod = spec.pop("pod", {})
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": {
            **(lead or {}),
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [server], **pod},
            },
            **spec,
        },
    }


def probed(server: dict[str, Any], service: str) -> dict[str, Any]:
    """``server`` with compose's health check of ``service`` as its readiness probe."""
    server["readinessProbe"] = {"exec": {"command": ready_command(service)}, "periodSeconds": 5}
    return server


def config_mount(
    server: dict[str, Any], config_map: str, path: str, volume: str = "conf"
) -> dict[str, Any]:
    """``server`` with ConfigMap ``config_map`` mounted read-only on ``path``, as compose binds it."""
    server["volumeMounts"] = [{"name": volume, "mountPath": path, "readOnly": True}]
    return {"volumes": [{"name": volume, "configMap": {"name": config_map}}]}


def shop_objects() -> list[tuple[str, dict[str, Any]]]:
    probe = {
        # Django answers only the hosts it allows; the kubelet would send the pod's IP.
        "httpGet": {
            "path": "/healthz",
            "port": "http",
            "httpHeaders": [{"name": "Host", "value": "localhost"}],
        },
        "periodSeconds": 5,
    }
    app = container("shop", DOCKERFILE_CMD)
    app["ports"] = [{"name": "http", "containerPort": APP_PORT}]
    app |= instance_env({"valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    app["readinessProbe"] = probe
    # Generous, like compose's start_period: a restart must not hide a slow start.
    app["livenessProbe"] = {**probe, "periodSeconds": 10, "failureThreshold": 6}
    service = cluster_service(SHOP, [{"name": "http", "port": 80, "targetPort": "http"}])
    backend = {"service": {"name": SHOP, "port": {"name": "http"}}}
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": SHOP},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
            ],
        },
    }
    return [
        (
            "The instances: gunicorn as deploy/gunicorn.conf.py sizes it for SESSION_MODE\n"
            "(one worker where sessions live in local memory). INSTANCE_NAME is the pod's name.",
            deployment(SHOP, app, len(app_services())),
        ),
        ("Round robin over the ready pods; the Ingress below decides any affinity.", service),
        (
            "ingress-nginx plays the native lab's nginx. No host: any Host reaches the shop.",
            ingress,
        ),
    ]


# The Dockerfile's CMD: an app service of compose names no command of its own.
DOCKERFILE_CMD = [
    "gunicorn",
    "--config",
    "/app/deploy/gunicorn.conf.py",
    "sessions_lab.wsgi:application",
]


def migrate_objects() -> list[tuple[str, dict[str, Any]]]:
    service = compose_service("migrate")
    job = container("migrate", defaults([*service["entrypoint"], *service["command"]]))
    job |= instance_env({"value": "prepare-database"})
    return [
        (
            "Migrations and the demo users, compose's `migrate` service. Nothing orders it\n"
            "before the shop: it is retried until PostgreSQL answers, and the README says\n"
            "to wait for it (kubectl wait --for=condition=complete job/migrate).",
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "migrate"},
                "spec": {
                    "backoffLimit": 10,
                    "template": {"spec": {"restartPolicy": "OnFailure", "containers": [job]}},
                },
            },
        )
    ]


def postgres_objects() -> list[tuple[str, dict[str, Any]]]:
    server = probed(container("postgres", compose_service("postgres")["command"], 5432), "postgres")
    server["volumeMounts"] = [{"name": "data", "mountPath": "/var/lib/postgresql"}]
    claim = {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    statefulset = stateful_set(
        "postgres",
        server,
        volumeClaimTemplates=[claim],
        # The image's user (uid 10001) must own the claimed volume.
        pod={"securityContext": {"fsGroup": 10001}},
    )
    return [
        (
            "Headless: the pod's own address, as DATABASE_URL names it (postgres:5432).",
            headless_service("postgres", 5432),
        ),
        (
            "compose's postgres service: initdb on the empty claim at the first start, the\n"
            "data under data/ (a fresh volume's lost+found would stop initdb).",
            statefulset,
        ),
    ]


def store_objects(store: str) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, str]]:
    """A store's objects, and the configuration files its ConfigMap carries.

    Valkey's and memcached's; the replicated store's are ``k8s_replication``'s.
    """
    bind = "0.0.0.0"  # noqa: S104 - every interface of the pod: only the cluster reaches it
    if store == "memcached":
        server = probed(
            container("memcached", compose_service("memcached1")["command"], MEMCACHED_PORT),
            "memcached1",
        )
        return [
            (
                "A node keeps its DNS name while it is not ready: the shop's client decides\n"
                "a node is dead by its own timeouts and skips it, as with compose's nodes.",
                headless_service("memcached", MEMCACHED_PORT, publishNotReadyAddresses=True),
            ),
            (
                "One node per instance, memcached-0..N-1 (MEMCACHED_SERVERS lists them in\n"
                "this order). No volume: a restarted node comes back empty, as a real one does.",
                stateful_set(
                    "memcached", server, memcached_nodes(), podManagementPolicy="Parallel"
                ),
            ),
        ], {}
    if store != "redis":
        raise ValueError(f"{store}: k8s_replication builds the replicated store")
    conf = render_redis_conf(bind, REDIS_PORT, "/data", "none")
    command = defaults(compose_service(store)["command"])
    server = probed(container(store, command, REDIS_PORT), store)
    pod = config_mount(server, conf_map(store), str(Path(command[-1]).parent))
    return [
        (f"Headless: {store}:{REDIS_PORT} is the pod itself.", headless_service(store, REDIS_PORT)),
        (
            f"compose's {store} service and configuration, mounted where compose binds it.\n"
            "No persistence: a restart empties the store, the lesson of the redis mode.",
            stateful_set(store, server, pod=pod),
        ),
    ], {Path(command[-1]).name: conf}


# ---------------------------------------------------------------------- the load


def with_option(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with the value after ``flag`` replaced by ``value``."""
    at = argv.index(flag) + 1
    return [*argv[:at], value, *argv[at + 1 :]]


def locust_container(service: str, args: list[str]) -> dict[str, Any]:
    """compose's ``service`` (entrypoint ``locust``) running ``args``, with its variables:
    those the shop has too from the shop's ConfigMap (DEMO_PASSWORD), the rest as compose's
    defaults (LOCUST_DEMO_USERS: as many demo users as the migrate Job makes)."""
    compose = compose_service(service)
    env = [
        {"name": key, "valueFrom": {"configMapKeyRef": {"name": SHOP_ENV, "key": key}}}
        if key in shop_env()
        else {"name": key, "value": str(defaults(value))}
        for key, value in compose["environment"].items()
    ]
    spec = container(service, defaults(compose["entrypoint"]))
    return spec | {"args": args, "env": env}


def deployment(name: str, server: dict[str, Any], replicas: int = 1) -> dict[str, Any]:
    return workload("Deployment", name, server, replicas)


def locust_objects() -> list[tuple[str, dict[str, Any]]]:
    """compose's ``locust`` (the master) and ``locust-worker`` services: the same commands,
    ingress-nginx as the host and the master's Service as the workers' master."""
    web_port = int(defaults(compose_service(LOCUST)["ports"][0]).rsplit(":", 1)[1])
    master = locust_container(
        LOCUST,
        with_option(defaults(compose_service(LOCUST)["command"]), "--host", f"http://{INGRESS}"),
    )
    master["ports"] = [
        {"name": "web", "containerPort": web_port},
        {"name": "workers", "containerPort": LOCUST_MASTER_PORT},
    ]
    master["readinessProbe"] = {"tcpSocket": {"port": "web"}, "periodSeconds": 5}
    compose = compose_service(LOCUST_WORKER)
    worker = locust_container(
        LOCUST_WORKER, with_option(defaults(compose["command"]), "--master-host", LOCUST)
    )
    service = cluster_service(
        LOCUST,
        [
            {"name": "workers", "port": LOCUST_MASTER_PORT, "targetPort": "workers"},
            {"name": "web", "port": web_port, "targetPort": "web"},
        ],
    )
    return [
        (
            "Locust's master, compose's `locust` service: the web UI (kubectl port-forward\n"
            f"service/{LOCUST} {web_port}:{web_port}), where the workers report. Its host is\n"
            "ingress-nginx's controller, as compose's is nginx: the load goes through the\n"
            "Ingress, with its cookie affinity in sticky.",
            deployment(LOCUST, master),
        ),
        ("The workers' way to the master, and the web UI's.", service),
        (
            "The workers, compose's `locust-worker` service, as many as its replicas; they run\n"
            f"the users. kubectl scale deployment/{LOCUST_WORKER} --replicas=N for more.",
            deployment(LOCUST_WORKER, worker, int(defaults(compose["deploy"]["replicas"]))),
        ),
    ]
