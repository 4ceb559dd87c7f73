"""The shop options on the command line: where they apply, and where they are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessions_lab import cli
from sessions_lab.cluster.cluster import Cluster
from sessions_lab.cluster.config import ShopOptions


def test_attack_on_the_running_lab_refuses_shop_options_it_cannot_apply(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(Cluster, "is_running", lambda self: True)
    code = cli.main(["attack", "--encrypt-sessions", "--run-dir", str(tmp_path)])
    assert code == 2
    assert "shop options apply to the labs `attack --mode M` starts" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "options"),
    [
        ([], ShopOptions()),
        (
            ["--cart-store", "rows", "--encrypt-sessions", "--session-idle", "5",
             "--session-absolute", "60"],
            ShopOptions("rows", encrypt_sessions=True, session_idle=5, session_absolute=60),
        ),
    ],
)  # fmt: skip
def test_every_command_that_starts_a_lab_reads_the_same_shop_options(
    argv: list[str], options: ShopOptions
) -> None:
    parser = cli.build_parser()
    for command in (["up", "--mode", "redis"], ["experiment"], ["bench"], ["attack"]):
        assert cli.shop_options(parser.parse_args([*command, *argv])) == options
