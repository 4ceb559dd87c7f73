"""docs/architecture.md's rules, held by the code: import directions, small modules, no
reference to a document the repository lacks."""

from __future__ import annotations

import re
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


# A document named in prose or code, such as ``docs/architecture.md``; a path may climb out
# of the checkout with a leading ``../``, which a user who clones the project does not have.
DOCUMENT = re.compile(r"(?<![\w/.-])((?:\.\./|[\w-]+/)*[\w.-]+\.md)\b")


WRITTEN_BY_THE_LAB = {"report.md", "bench.md"}


def test_every_document_a_file_names_is_in_the_repository() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    # The reports the lab writes into a results folder are documents too.
    documents = {Path(name).name for name in tracked if name.endswith(".md")} | WRITTEN_BY_THE_LAB
    missing = {
        f"{name}: {named}"
        for name in tracked
        if not name.endswith(".png")
        for named in DOCUMENT.findall((PROJECT_ROOT / name).read_text(errors="replace"))
        # Outside the checkout (../…), or a document no file of the repository is.
        if named.startswith("../") or Path(named).name not in documents
    }
    assert missing == set()
