"""`sessions-lab render --target compose`: the README's one step before `docker compose up`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sessions_lab import cli
from sessions_lab.cluster import compose_files as compose
from sessions_lab.modes import MODE_NAMES


@pytest.fixture
def deploy(deploy_copy: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(compose, "DEPLOY_DIR", deploy_copy)
    return deploy_copy


def test_render_writes_every_configuration_and_a_private_env(
    deploy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for rendered in ("nginx", "redis", "replication"):
        shutil.rmtree(deploy / rendered)
    (deploy / ".env").unlink(missing_ok=True)
    assert cli.main(["render", "--target", "compose", "--mode", "sticky", "--affinity", "ip"]) == 0
    # Every mode's variant (sticky: one per affinity), so .env alone switches mode.
    assert {p.name for p in (deploy / "nginx").glob("*.conf")} == {
        f"{compose.variant_name(mode, affinity)}.conf"
        for mode in MODE_NAMES
        for affinity in compose.affinities_for(mode)
    }
    assert sorted(p.name for p in (deploy / "redis").glob("*.conf")) == ["aof.conf", "none.conf"]
    # The replicated store's servers run in every mode: one file each.
    assert sorted(p.name for p in (deploy / "replication").glob("*.conf")) == sorted(
        f"{name}.conf" for name in compose.replication_services(deploy)
    )
    env = compose.read_env(deploy)
    assert env["SESSION_MODE"] == "sticky" and env["LAB_AFFINITY"] == "ip"
    assert env["SECRET_KEY"] != env["JWT_SIGNING_KEY"]
    assert "docker compose -f deploy/docker-compose.yml up" in capsys.readouterr().out


def test_rendered_configs_are_readable_by_the_containers_whatever_the_umask(deploy: Path) -> None:
    previous = os.umask(0o077)  # a cautious user's: files only they may read
    try:
        assert (
            cli.main(["render", "--target", "compose", "--mode", "redis", "--port", "18080"]) == 0
        )
    finally:
        os.umask(previous)
    for folder in ("nginx", "redis", "replication"):
        assert (deploy / folder).stat().st_mode & 0o755 == 0o755
        for conf in (deploy / folder).glob("*.conf"):
            assert conf.stat().st_mode & 0o644 == 0o644, conf  # the image's user reads it
    assert compose.read_env(deploy)["LAB_PORT"] == "18080"
    assert (deploy / ".env").stat().st_mode & 0o077 == 0  # the keys stay private


def test_render_switches_env_to_the_memcached_mode(deploy: Path) -> None:
    assert cli.main(["render", "--target", "compose", "--mode", "memcached"]) == 0
    env = compose.read_env(deploy)
    assert env["SESSION_MODE"] == "memcached" and env["LAB_AFFINITY"] == "none"
    assert (deploy / "nginx" / "memcached-none.conf").is_file()


def test_render_switches_env_to_the_replicated_mode(deploy: Path) -> None:
    assert cli.main(["render", "--target", "compose", "--mode", "replicated"]) == 0
    env = compose.read_env(deploy)
    assert env["SESSION_MODE"] == "replicated" and env["LAB_AFFINITY"] == "none"
    assert env["LAB_REPLICATION"] == "async"  # .env.example's: edit it for sync
    assert (deploy / "nginx" / "replicated-none.conf").is_file()
    assert (deploy / "replication" / "sentinel2.conf").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mode", "redis", "--affinity", "ip"], "--affinity applies to --mode sticky only"),
        (["--affinity", "ip"], "--affinity needs --mode sticky"),
        (["--instances", "4"], "defines 3 instances"),
    ],
)
def test_render_refuses_what_compose_cannot_run(
    deploy: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (deploy / ".env").unlink(missing_ok=True)
    assert cli.main(["render", "--target", "compose", *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (deploy / ".env").exists()
