"""The lab's names for what runs on Kubernetes, what a fault there cannot be, and pods as JSON.

A scenario names its targets as the native lab does (``app2``, ``redis``,
``memcached2``, ``redis-primary``); ``k8s_driver`` finds what each means in
``deploy/k8s/``'s objects: an app instance is a pod of the shop Deployment,
a store server the pod of its StatefulSet (``redis-0``, ``memcached-1``).
Some faults have no Kubernetes counterpart the lab may cause; ``refused``
says which and why, in one place for the driver's commands and for the
runner's check before anything starts. Pods are read from ``kubectl get
pods -o json``; the helpers here take that JSON apart.
"""

from __future__ import annotations

import re
from typing import Any

from sessions_lab.cluster.compose_files import (
    APP_PORT,
    MEMCACHED_PORT,
    POSTGRES_PORT,
    REDIS_PORT,
    SENTINEL_PORT,
)
from sessions_lab.cluster.k8s_objects import SHOP
from sessions_lab.cluster.replication import PRIMARY
from sessions_lab.cluster.state import ProcessStatus

Pod = dict[str, Any]  # one item of `kubectl get pods -o json`

# The label that says which app instance (app1, app2, …) a shop pod is: set on
# the pods at `up`, handed to the pod that replaces a deleted one by `start`.
# Pod names are random and creation order shifts as pods are replaced, so
# neither alone would keep "app2" the same instance through a scenario.
INSTANCE_LABEL = "sessions-lab/instance"

APP = re.compile(r"app(\d+)")
REPLICA = re.compile(r"app\d+-replica")
# A StatefulSet whose pods are numbered from 0 where the lab numbers from 1.
NUMBERED = {"memcached": MEMCACHED_PORT, "sentinel": SENTINEL_PORT}
# A StatefulSet of one pod, named as the lab names its server.
SINGLE = {"redis": REDIS_PORT, "postgres": POSTGRES_PORT, PRIMARY: REDIS_PORT}
ROLES = {"memcached": "memcached", "sentinel": "sentinel", PRIMARY: "primary"}

# Why a fault cannot be carried out under Kubernetes: after "it …" in a refusal.
NO_PAUSE = "kubectl cannot pause a container's processes"
NO_LOAD_BALANCER = (
    "the load balancer here is the cluster's ingress-nginx controller, which the lab does not own"
)
NO_DRAIN = (
    "the lab cannot take a pod out of ingress-nginx's rotation ahead of its SIGTERM: deleting "
    "the pod does both at once, which is what rolling-restart-nodrain measures"
)
NO_REPLICA = "a replica is a container of an app pod here, and kubectl cannot stop one container"


def refused(action: str, target: str, signal: str | None = None) -> str | None:
    """Why ``action target`` cannot be done under Kubernetes ("it … , and …"); None if it can."""
    if action == "kill" and (signal or "").upper().removeprefix("SIG") == "STOP":
        return f"it hangs {target} (SIGSTOP), and {NO_PAUSE}"
    if target == "nginx":
        return f"it stops nginx, and {NO_LOAD_BALANCER}"
    if action == "drain":
        return f"it drains {target} out of the load balancer first, and {NO_DRAIN}"
    if REPLICA.fullmatch(target):
        return f"it stops {target}, and {NO_REPLICA}"
    if action == "add" and not APP.fullmatch(target):
        return f"it adds {target}, and only app instances can be added"
    return None


def app_number(target: str) -> int | None:
    """``app2`` → 2; None for anything that is not an app instance."""
    match = APP.fullmatch(target)
    return int(match.group(1)) if match else None


def stateful_pod(target: str) -> tuple[str, str] | None:
    """The StatefulSet and pod a store target is: ``memcached2`` → (memcached, memcached-1)."""
    if target in SINGLE:
        return target, f"{target}-0"
    for name in NUMBERED:
        match = re.fullmatch(rf"{name}(\d+)", target)
        if match and int(match.group(1)) >= 1:
            return name, f"{name}-{int(match.group(1)) - 1}"
    return None


def lab_name(pod_name: str) -> str | None:
    """The lab's name of a StatefulSet pod (``memcached-1`` → memcached2); None for others."""
    set_name, _, ordinal = pod_name.rpartition("-")
    if not ordinal.isdigit():
        return None
    if set_name in SINGLE and ordinal == "0":
        return set_name
    return f"{set_name}{int(ordinal) + 1}" if set_name in NUMBERED else None


# ---------------------------------------------------------------------- pods as JSON


def name(pod: Pod) -> str:
    return str(pod["metadata"]["name"])


def instance(pod: Pod) -> str | None:
    return (pod["metadata"].get("labels") or {}).get(INSTANCE_LABEL)


def is_shop(pod: Pod) -> bool:
    return (pod["metadata"].get("labels") or {}).get("app") == SHOP


def live(pods: list[Pod]) -> list[Pod]:
    """The pods not being deleted, oldest first (then by name: one second is the clock's step)."""
    alive = [pod for pod in pods if not pod["metadata"].get("deletionTimestamp")]
    return sorted(alive, key=lambda pod: (pod["metadata"].get("creationTimestamp", ""), name(pod)))


def ready(pod: Pod) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_status(pod: Pod | None) -> str:
    """A pod's phase in the native lab's words (``ProcessStatus``); "terminating" as it is."""
    if pod is None:
        return ProcessStatus.NOT_STARTED
    if pod["metadata"].get("deletionTimestamp"):
        return "terminating"
    phase = (pod.get("status") or {}).get("phase", "Pending")
    if phase == "Running":
        return ProcessStatus.RUNNING
    return ProcessStatus.EXITED if phase in ("Succeeded", "Failed") else ProcessStatus.STARTING


def process(lab: str, role: str, port: int, pod: Pod | None) -> dict[str, Any]:
    """One entry of the state's ``processes``, as the other drivers write it, plus the pod."""
    status = pod_status(pod)
    restarts = sum(
        c.get("restartCount", 0) for c in ((pod or {}).get("status") or {}).get("containerStatuses") or []
    )  # fmt: skip
    return {
        "name": lab,
        "role": role,
        "pod": name(pod) if pod else None,
        "pid": None,
        "port": port,
        "status": status,
        "healthy": pod is not None and status == ProcessStatus.RUNNING and ready(pod),
        "drained": False,
        "exit": None,  # a pod that ends is replaced: the count of its containers' restarts instead
        "restarts": restarts,
    }


def processes(pods: list[Pod], instances: int) -> list[dict[str, Any]]:
    """The app instances (``instances`` at least, each by its label), a shop pod no instance
    has claimed yet under its own name, then the stores' pods in name order."""
    current = live(pods)
    shop = [pod for pod in current if is_shop(pod)]
    claimed = {instance(pod): pod for pod in shop if instance(pod)}
    numbers = [number for label in claimed if (number := app_number(str(label)))]
    entries = [
        process(f"app{n}", "app", APP_PORT, claimed.get(f"app{n}"))
        for n in range(1, max([instances, *numbers]) + 1)
    ]
    entries += [process(name(pod), "app", APP_PORT, pod) for pod in shop if not instance(pod)]
    for pod in sorted(current, key=name):
        lab = lab_name(name(pod))
        if lab is not None:
            set_name = name(pod).rpartition("-")[0]
            port = SINGLE.get(set_name) or NUMBERED[set_name]
            entries.append(process(lab, ROLES.get(set_name, set_name), port, pod))
    return entries
