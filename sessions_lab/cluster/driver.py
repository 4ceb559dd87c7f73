"""What a lab cluster must do for the experiment runner: one contract, three implementations.

A scenario kills, starts, drains and adds instances of a running lab and
collects its logs afterwards; whether the lab is native processes under the
supervisor (``cluster.Cluster``), containers under docker compose
(``compose.ComposeCluster``) or pods of a Kubernetes cluster
(``k8s_driver.KubernetesCluster``) must not matter past the moment one is
chosen. ``Driver`` writes that down as a ``Protocol``: the classes satisfy it
by shape, with no common base class, and ``driver_for`` is the one place that
knows there are three.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from sessions_lab.cluster.cluster import Cluster
from sessions_lab.cluster.config import RunFolder, ShopOptions
from sessions_lab.cluster.errors import LabError

DRIVERS = ("native", "compose", "kubernetes")


class Driver(Protocol):
    """A lab cluster as the experiment runner drives it.

    ``up`` and ``status`` return the lab's state, every other command a
    message for the person watching; all raise ``LabError`` for a request
    that cannot be carried out (``LabFailure`` when the lab tried and failed).
    """

    # Where the runner announces its live files (``run.experiment``) and
    # finds the logs ``collect_logs`` gathered.
    run: RunFolder

    # The state is returned as a Mapping: the native driver's is state.json, the
    # compose driver's the same shape built from `docker compose ps`, the Kubernetes
    # driver's from `kubectl get pods`.
    def up(
        self,
        mode: str,
        instances: int = 3,
        affinity: str | None = None,
        db: str = "sqlite",
        port: int = 8080,
        redis_persistence: str = "none",
        demo_users: int = 10,
        replication: str = "async",
        shop: ShopOptions | None = None,
    ) -> Mapping[str, Any]:
        """Start the lab; its state once every process is healthy."""

    def down(self) -> str:
        """Stop every process of the lab."""

    def kill(self, target: str, signal_name: str = "KILL") -> str:
        """Signal a process: KILL (a crash), TERM (a graceful stop) or STOP (a hang)."""

    def start(self, target: str) -> str:
        """Start a stopped process, or resume a paused one."""

    def restart(self, target: str) -> str:
        """Stop a process gracefully and start it again."""

    def drain(self, target: str) -> str:
        """Take an app instance out of nginx once its requests in flight are done."""

    def add(self, target: str) -> str:
        """Scale out by one app instance, named ``target``."""

    def status(self) -> Mapping[str, Any]:
        """The lab's state, in the shape of ``state.json``."""

    def collect_logs(self) -> Path:
        """Every process's log (and nginx's access log) in one folder; that folder."""

    def manage(self, *arguments: str) -> str:
        """Run ``manage.py ARGUMENTS`` against the lab's database; its standard output."""


def refusal(name: str, scenario: str, events: Iterable[Any], **options: Any) -> str | None:
    """Why driver ``name`` cannot run ``scenario``'s ``events`` with these ``up`` options.

    Asked before anything starts: only the Kubernetes driver refuses some
    faults (a hang, the load balancer, a drain) and options (see ``k8s_driver``).
    """
    if name != "kubernetes":
        return None
    from sessions_lab.cluster import k8s_driver

    return k8s_driver.refusal(scenario, events) or k8s_driver.unsupported(**options)


def driver_for(name: str, run_dir: Path) -> Driver:
    """The cluster ``--driver NAME`` means; ``run_dir`` is the native lab's run folder."""
    if name == "native":
        return Cluster(run_dir)
    if name == "compose":
        # Imported here: PyYAML and the compose files serve this driver only.
        from sessions_lab.cluster.compose import ComposeCluster

        return ComposeCluster()
    if name == "kubernetes":
        # Imported here too: kubectl and deploy/k8s/ serve this driver only. Its files
        # (the port-forward's pid, the pods' logs) live beside the native lab's.
        from sessions_lab.cluster.k8s_driver import KubernetesCluster

        return KubernetesCluster(run_dir / "kubernetes")
    raise LabError(f"unknown driver {name!r}: choose one of {', '.join(DRIVERS)}")
