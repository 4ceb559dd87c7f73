"""docs/architecture.md's rules, held by the code: import directions, small modules, no
reference to a document the repository lacks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sessions_lab.paths import PROJECT_ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("sessions_lab", "shop", "loadtests")
MAX_MODULE_LINES = 450


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        # The copy under test comes first on the path, before the installed project.
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            PROJECT_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def add_import(module: Path, statement: str) -> None:
    module.write_text(module.read_text() + f"\n{statement}  # noqa\n")


def test_the_import_rules_hold() -> None:
    result = lint_imports(PROJECT_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "statement", "contract"),
    [
        (
            "shop/views.py",
            "import sessions_lab.cluster.config",
            "The shop knows nothing of the lab but the mode registry",
        ),
        (
            "sessions_lab/cluster/network.py",
            "import sessions_lab.dashboard.guard",
            "The lab is layered",
        ),
        ("loadtests/records.py", "import shop.cart", "The Locust shoppers are clients"),
        ("shop/cart.py", "import shop.api.errors", "No cycles between the parts of the lab"),
    ],
)
def test_a_forbidden_import_fails_the_lint(
    project_copy: Path, module: str, statement: str, contract: str
) -> None:
    add_import(project_copy / module, statement)
    result = lint_imports(project_copy)
    assert result.returncode != 0
    assert f"{contract}" in result.stdout
    assert "BROKEN" in result.stdout


def source_files() -> list[Path]:
    return [
        path
        for package in ("sessions_lab", "shop")
        for path in (PROJECT_ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    ]


def test_no_module_is_over_450_lines() -> None:
    long = {
        str(path.relative_to(PROJECT_ROOT)): lines
        for path in source_files()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_nothing_points_at_a_document_the_repository_lacks() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    pointing = [
        name
        for name in tracked
        if not name.endswith(".png")
        and name != "tests/test_architecture.py"
        and any(
            absent in (PROJECT_ROOT / name).read_text(errors="replace")
            for absent in ("DESIGN.md", "STYLE.md", "../shared", "shared/seeds")
        )
    ]
    assert pointing == []
