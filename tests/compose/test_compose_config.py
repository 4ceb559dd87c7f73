"""`docker compose config -q` accepts the deployment in every mode, and can say no."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sessions_lab.cluster.compose_files import affinities_for, variant_name
from sessions_lab.modes import MODE_NAMES
from tests.compose.conftest import ComposeRun

CHOICES = [(mode, affinity) for mode in MODE_NAMES for affinity in affinities_for(mode)]


@pytest.mark.parametrize(("mode", "affinity"), CHOICES, ids=[f"{m}-{a}" for m, a in CHOICES])
def test_every_mode_is_a_valid_compose_project(
    compose: ComposeRun, deploy_copy: Path, mode: str, affinity: str
) -> None:
    choice = {"SESSION_MODE": mode, "LAB_AFFINITY": affinity}
    checked = compose(deploy_copy / "docker-compose.yml", "config", "-q", env=choice)
    assert checked.returncode == 0, checked.stderr

    resolved = compose(deploy_copy / "docker-compose.yml", "config", "--format", "json", env=choice)
    services = json.loads(resolved.stdout)["services"]
    # The configuration nginx is told to load exists in the folder it mounts.
    conf = services["nginx"]["command"][-1]
    mount = next(v for v in services["nginx"]["volumes"] if v["target"] == "/etc/nginx/lab")
    assert conf == f"/etc/nginx/lab/{variant_name(mode, affinity)}.conf"
    assert (Path(mount["source"]) / Path(conf).name).is_file()
    assert {services[f"app{n}"]["environment"]["SESSION_MODE"] for n in (1, 2, 3)} == {mode}


@pytest.mark.parametrize("persistence", ["none", "aof"])
def test_redis_persistence_picks_a_rendered_configuration(
    compose: ComposeRun, deploy_copy: Path, persistence: str
) -> None:
    resolved = compose(
        deploy_copy / "docker-compose.yml",
        "config",
        "--format",
        "json",
        env={"LAB_REDIS_PERSISTENCE": persistence},
    )
    redis = json.loads(resolved.stdout)["services"]["redis"]
    conf = (deploy_copy / "redis" / Path(redis["command"][-1]).name).read_text()
    assert f"appendonly {'yes' if persistence == 'aof' else 'no'}\n" in conf


BREAKAGES = {
    "unknown dependency condition": (
        "condition: service_completed_successfully",
        "condition: service_finished",
    ),
    "dependency on a service that does not exist": (
        "    migrate:\n      condition",
        "    migrator:\n      condition",
    ),
    "misspelt service key": ('    entrypoint: ["locust"]', '    entrypointt: ["locust"]'),
    "broken YAML": ("services:\n", "services:\n  - nginx\n"),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_a_broken_copy_fails_the_check(
    compose: ComposeRun, deploy_copy: Path, breakage: str
) -> None:
    old, new = BREAKAGES[breakage]
    compose_file = deploy_copy / "docker-compose.yml"
    text = compose_file.read_text()
    assert old in text, "the breakage no longer applies to docker-compose.yml"
    compose_file.write_text(text.replace(old, new, 1))
    assert compose(compose_file, "config", "-q").returncode != 0


def test_without_the_generated_keys_compose_refuses_to_start(
    compose: ComposeRun, deploy_copy: Path, tmp_path: Path
) -> None:
    example = deploy_copy / ".env.example"
    checked = compose(
        deploy_copy / "docker-compose.yml", "--env-file", str(example), "config", "-q"
    )
    assert checked.returncode != 0
    assert "generate deploy/.env first" in checked.stderr
