"""``deploy/k8s/``: the lab on Kubernetes, one kustomize overlay per mode, rendered here.

The compose deployment's topology, as Kubernetes objects: the shop as one
Deployment of as many replicas as compose runs app services, behind a
Service and an Ingress for ingress-nginx; the migrate Job; PostgreSQL as a
StatefulSet; Locust's master and its workers. ``base/`` holds those;
``stores/`` the servers some modes need (Valkey, the memcached nodes, the
replicated store's primary and Sentinels); each ``overlays/<mode>/`` picks
its store from the mode registry, sets ``SESSION_MODE`` and the store's
addresses, in a mode balanced with affinity adds ingress-nginx's cookie
affinity, and in the replicated mode gives each shop pod its own replica. The objects themselves are ``k8s_objects``'s (the
replicated store's, ``k8s_replication``'s); this module writes them, and the keys.

The keys are no committed file: ``sessions-lab render --target k8s --mode M``
writes ``overlays/M/lab.env`` (git-ignored), which the overlay's
``secretGenerator`` reads. Every other file here is committed, and
tests/k8s checks that it is what this module writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sessions_lab.cluster.compose_files import DEPLOY_DIR, read_env_file
from sessions_lab.cluster.config import KEY_MAKERS, missing_keys
from sessions_lab.cluster.errors import LabError
from sessions_lab.cluster.k8s_objects import (
    SECRETS,
    SENTINEL,
    SHOP,
    SHOP_ENV,
    conf_map,
    locust_objects,
    migrate_objects,
    mode_env,
    postgres_objects,
    sentinel_pods,
    shop_env,
    shop_objects,
    store_objects,
    store_of,
)
from sessions_lab.cluster.k8s_replication import (
    REPLICA,
    REPLICA_CONF,
    STORE,
    replica_patch,
    replica_url,
    replicated_objects,
)
from sessions_lab.cluster.nginx import STICKY_COOKIE
from sessions_lab.cluster.replication import PRIMARY
from sessions_lab.modes import MODE_NAMES, LoadBalancing, get_mode

K8S_DIR = DEPLOY_DIR / "k8s"
ENV_FILE = "lab.env"  # an overlay's keys, git-ignored
KUSTOMIZATION = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
HEADER = (
    "# Rendered by `sessions-lab render --target k8s` from the mode registry and\n"
    "# deploy/docker-compose.yml (sessions_lab/cluster/k8s_files.py): edit that, not this.\n"
)
# Django's SESSION_COOKIE_AGE (sessions_lab/settings.py): a client stays pinned
# as long as its session may live.
AFFINITY_MAX_AGE = 2 * 24 * 3600


# ---------------------------------------------------------------------- files


def manifest(objects: list[tuple[str, dict[str, Any]]]) -> str:
    """Objects as one YAML stream, each after a comment that says why it is so."""
    return "---\n".join([HEADER, *(commented(why, body)[len(HEADER) :] for why, body in objects)])


class _Dumper(yaml.SafeDumper):
    """Every value written out where it stands: no ``&id001`` anchors for a reader to chase."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(body: dict[str, Any]) -> str:
    return yaml.dump(body, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


def commented(why: str, body: dict[str, Any]) -> str:
    """One object alone in its file (no ``---``: a patch file is read as one document)."""
    return HEADER + "".join(f"# {line}\n" for line in why.splitlines()) + dump(body)


def kustomization(why: str, **fields: Any) -> str:
    return commented(why, {**KUSTOMIZATION, **fields})


def literals(env: dict[str, str]) -> list[str]:
    return [f"{key}={value}" for key, value in env.items()]


def base_files() -> dict[str, str]:
    return {
        "base/kustomization.yaml": kustomization(
            "What every mode runs. Not applied alone: an overlay adds SESSION_MODE,\n"
            "its store and the keys.",
            resources=["postgres.yaml", "migrate.yaml", "shop.yaml", "locust.yaml"],
            configMapGenerator=[{"name": SHOP_ENV, "literals": literals(shop_env())}],
        ),
        "base/shop.yaml": manifest(shop_objects()),
        "base/migrate.yaml": manifest(migrate_objects()),
        "base/postgres.yaml": manifest(postgres_objects()),
        "base/locust.yaml": manifest(locust_objects()),
    }


def store_files(store: str) -> dict[str, str]:
    objects, confs = replicated_objects() if store == STORE else store_objects(store)
    fields: dict[str, Any] = {"resources": [f"{store}.yaml"]}
    if confs:
        fields["configMapGenerator"] = [{"name": conf_map(store), "files": sorted(confs)}]
    files = {
        f"stores/{store}/kustomization.yaml": kustomization(
            f"The {store} store, added by the overlays of the modes that keep sessions on it.",
            **fields,
        ),
        f"stores/{store}/{store}.yaml": manifest(objects),
    }
    files |= {f"stores/{store}/{conf}": text for conf, text in confs.items()}
    return files


AFFINITY_PATCH = "ingress-affinity.yaml"
REPLICA_PATCH = "shop-replica.yaml"


def affinity_patch() -> str:
    """ingress-nginx's cookie affinity: the native lab's `sticky cookie` (--affinity cookie)."""
    prefix = "nginx.ingress.kubernetes.io/"
    annotations = {
        "affinity": "cookie",
        # Keep a client on its pod when pods are added; only a dead pod's clients move.
        "affinity-mode": "persistent",
        "session-cookie-name": STICKY_COOKIE,
        "session-cookie-max-age": str(AFFINITY_MAX_AGE),
        "session-cookie-path": "/",
        "session-cookie-samesite": "Lax",
    }
    body = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": SHOP, "annotations": {prefix + k: v for k, v in annotations.items()}},
    }
    why = (
        "Sessions live in one pod's memory: ingress-nginx pins each client to a pod\n"
        f"by its own cookie ({STICKY_COOKIE}, the native nginx's name), for as long as a session lives."
    )
    return commented(why, body)


def replica_patch_file() -> str:
    """The replicated overlay's patch: a replica in every shop pod, read by its shop."""
    why = (
        "Each instance reads its own replica: a sidecar of its pod (started before the\n"
        f"shop, which it holds back until it has the primary's data), {REPLICA_CONF} of the\n"
        f"{conf_map(STORE)} ConfigMap: replicaof {PRIMARY}. The shop reads it on loopback; its\n"
        "writes go to the primary the Sentinels name (REDIS_SENTINELS)."
    )
    return commented(why, replica_patch())


def overlay_files(mode: str) -> dict[str, str]:
    record = get_mode(mode)
    store = store_of(mode)
    why = [f"{mode}: {record.summary}"]
    if record.uses_replication:
        why += [
            f"Runs the primary (StatefulSet {PRIMARY}), {len(sentinel_pods())} Sentinels (StatefulSet "
            f"{SENTINEL}, REDIS_SENTINELS below)",
            f"and, in each shop pod, the instance's own replica: a sidecar ({REPLICA_PATCH},",
            f"container {REPLICA}) that the shop reads at {replica_url()}.",
        ]
    why += [
        f"Keys: {ENV_FILE}, git-ignored, written by `sessions-lab render --target k8s --mode {mode}`;",
        "without it this overlay does not build, so nothing runs with made-up keys.",
    ]
    fields: dict[str, Any] = {
        "resources": ["../../base", *([f"../../stores/{store}"] if store else [])],
        "configMapGenerator": [
            {"name": SHOP_ENV, "behavior": "merge", "literals": literals(mode_env(mode))}
        ],
        "secretGenerator": [{"name": SECRETS, "envs": [ENV_FILE]}],
    }
    files = {}
    if record.load_balancing is LoadBalancing.AFFINITY:
        files[f"overlays/{mode}/{AFFINITY_PATCH}"] = affinity_patch()
    if record.uses_replication:
        files[f"overlays/{mode}/{REPLICA_PATCH}"] = replica_patch_file()
    if files:
        fields["patches"] = [{"path": Path(name).name} for name in files]
    files[f"overlays/{mode}/kustomization.yaml"] = kustomization("\n".join(why), **fields)
    return files


def k8s_files() -> dict[str, str]:
    """Every committed file under deploy/k8s/, by its path there."""
    files = base_files()
    for store in sorted({store_of(mode) for mode in MODE_NAMES} - {None}):
        files |= store_files(store)
    for mode in MODE_NAMES:
        files |= overlay_files(mode)
    return files


def render_k8s(k8s_dir: Path = K8S_DIR) -> list[Path]:
    """Write every committed file of deploy/k8s/ into ``k8s_dir``."""
    written = []
    for name, text in k8s_files().items():
        path = k8s_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def write_lab_env(mode: str, k8s_dir: Path = K8S_DIR) -> Path:
    """``overlays/<mode>/lab.env``: its keys, made once (kept when it exists), private."""
    if mode not in MODE_NAMES:
        raise LabError(f"unknown mode {mode!r}: choose one of {', '.join(MODE_NAMES)}")
    path = k8s_dir / "overlays" / mode / ENV_FILE
    keys = read_env_file(path)
    keys |= missing_keys(keys)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("".join(f"{key}={keys[key]}\n" for key in KEY_MAKERS), encoding="utf-8")
    return path


def prepare_k8s(mode: str, k8s_dir: Path | None = None) -> list[Path]:
    """``sessions-lab render --target k8s --mode M``: every manifest, then M's keys (last)."""
    k8s_dir = k8s_dir or K8S_DIR  # at call time: tests point K8S_DIR at a copy
    return [*render_k8s(k8s_dir), write_lab_env(mode, k8s_dir)]
