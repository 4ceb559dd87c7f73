"""What one lab run is (mode, instances, affinity, ports) and where its files live.

``LabConfig`` is decided once, by ``up``, and written to ``lab.json`` in the
run folder; the supervisor, ``status`` and later the experiment runner all
read it from there, so they never disagree about a port. ``checked_config``
turns what a user asked for into one, or says why it cannot, for the native
cluster and the compose deployment alike. ``RunFolder`` names every file of a
run, so no module invents a path of its own.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sessions_lab.cluster.errors import LabError
from sessions_lab.cluster.network import LOOPBACK
from sessions_lab.mode_settings import CART_STORES
from sessions_lab.modes import MODE_NAMES, REPLICATION_CHOICES, LoadBalancing, get_mode

# secrets.json's session encryption key; the instances get it as SESSION_ENCRYPTION_KEYS.
ENCRYPTION_KEY = "SESSION_ENCRYPTION_KEY"
AFFINITIES = ("cookie", "learn", "route", "ip", "none")
DATABASES = ("sqlite", "postgres")
REDIS_PERSISTENCE = ("none", "aof")
REPLICATION = REPLICATION_CHOICES  # --replication: async, or sync (each save waits for a replica)

# The lab's topology (docs/architecture.md): app1 :8101, app2 :8102, …, Redis :6380, PostgreSQL
# :5433, memcached1 :11212, memcached2 :11213, …, and in replicated mode redis-primary :6380,
# app1-replica :6391, app2-replica :6392, …, sentinel1 :26381, … -- used when free, so a workshop sees the
# same numbers everywhere (and a system's own Redis or memcached keeps its default port).
APP_PORT_BASE = 8101
REDIS_PORT = 6380
POSTGRES_PORT = 5433
MEMCACHED_PORT_BASE = 11212
REPLICA_PORT_BASE = 6391
SENTINEL_PORT_BASE = 26381
SENTINELS = 3
# The live dashboard listens beside nginx: 8080 -> 9080.
DASHBOARD_PORT_OFFSET = 1000


@dataclass(frozen=True)
class ShopOptions:
    """What the shop does with its state in any mode: options of ``up``, ``experiment``, ``bench``.

    Each reaches every instance as an environment variable (``apps.app_env``,
    and ``deploy/.env`` under compose); the shop reads them in its settings.
    """

    # "rows": a logged-in user's cart is database rows per line in every mode
    # (CART_STORE), so two tabs changing different lines both keep theirs.
    cart_store: str = "session"
    # Every stored session (a Redis value, a row, the cookie) encrypted with
    # Fernet under the run folder's key (SESSION_ENCRYPTION_KEYS).
    encrypt_sessions: bool = False
    # Seconds without a request after which a login ends (SESSION_IDLE_S), and
    # seconds after the login after which it ends however active (SESSION_ABSOLUTE_S);
    # None: the shop's defaults (two days, refreshed only when the session changes).
    session_idle: int | None = None
    session_absolute: int | None = None

    def __post_init__(self) -> None:
        if self.cart_store not in CART_STORES:
            raise LabError(f"--cart-store is one of {', '.join(CART_STORES)}")
        for option, seconds in (("idle", self.session_idle), ("absolute", self.session_absolute)):
            if seconds is not None and (not isinstance(seconds, int) or seconds < 1):
                raise LabError(f"--session-{option} must be a whole number of seconds, 1 or more")

    def describe(self) -> str:
        """What differs from the defaults, for one line of output; empty if nothing does."""
        parts = [
            *(["carts in database rows"] if self.cart_store == "rows" else []),
            *(["sessions encrypted"] if self.encrypt_sessions else []),
            *([f"logged out after {self.session_idle} s idle"] if self.session_idle else []),
            *([f"{self.session_absolute} s after login"] if self.session_absolute else []),
        ]
        return ", ".join(parts)

    def env(self, encryption_key: str) -> dict[str, str]:
        """The instances' variables; set even when off, so none leaks in from the caller's."""
        return {
            "CART_STORE": self.cart_store,
            "SESSION_ENCRYPTION_KEYS": encryption_key if self.encrypt_sessions else "",
            "SESSION_IDLE_S": str(self.session_idle or ""),
            "SESSION_ABSOLUTE_S": str(self.session_absolute or ""),
        }

    @classmethod
    def from_env(cls, env: dict[str, str]) -> ShopOptions:
        """The options ``env`` gave the instances (``deploy/.env`` under compose)."""
        return cls(
            cart_store=env.get("CART_STORE") or "session",
            encrypt_sessions=bool(env.get("SESSION_ENCRYPTION_KEYS")),
            session_idle=_whole_seconds(env.get("SESSION_IDLE_S", "")),
            session_absolute=_whole_seconds(env.get("SESSION_ABSOLUTE_S", "")),
        )

    @classmethod
    def from_dict(cls, data: object) -> ShopOptions:
        known = cls.__dataclass_fields__
        items = data.items() if isinstance(data, dict) else ()
        return cls(**{key: value for key, value in items if key in known})


def _whole_seconds(text: str) -> int | None:
    """A timeout as the environment holds it; anything but a positive number is no timeout."""
    return int(text) if text.isdigit() and int(text) > 0 else None


@dataclass
class LabConfig:
    """The shape of one run: what ``up`` was asked for and the ports it chose."""

    mode: str
    instances: int
    affinity: str  # "none" outside sticky mode: the others are round robin
    db: str
    port: int
    redis_persistence: str
    demo_users: int = 10
    app_ports: list[int] = field(default_factory=list)
    redis_port: int | None = None
    postgres_port: int | None = None
    # One memcached per app instance at ``up`` (memcached mode), memcached1..N in
    # this order; fixed for the run: a scale-out adds no node (see memcached.py).
    memcached_ports: list[int] = field(default_factory=list)
    # replicated mode: the primary, one replica per app instance at ``up`` (appN-replica),
    # three Sentinels; and whether a save waits for a replica (--replication).
    replication: str = "async"
    primary_port: int | None = None
    replica_ports: list[int] = field(default_factory=list)
    sentinel_ports: list[int] = field(default_factory=list)
    shop: ShopOptions = field(default_factory=ShopOptions)
    dashboard_port: int | None = None
    listen_address: str = LOOPBACK

    @property
    def app_names(self) -> list[str]:
        return [f"app{number}" for number in range(1, self.instances + 1)]

    @property
    def memcached_names(self) -> list[str]:
        return [f"memcached{number}" for number in range(1, len(self.memcached_ports) + 1)]

    @property
    def memcached_servers(self) -> str:
        """``MEMCACHED_SERVERS``: every node, in node order, as each instance must list them."""
        return ",".join(f"{self.listen_address}:{port}" for port in self.memcached_ports)

    @property
    def replica_names(self) -> list[str]:
        return [f"{app}-replica" for app in self.app_names[: len(self.replica_ports)]]

    @property
    def sentinel_names(self) -> list[str]:
        return [f"sentinel{number}" for number in range(1, len(self.sentinel_ports) + 1)]

    @property
    def sentinels(self) -> str:
        """``REDIS_SENTINELS``: where every instance asks which server is the primary."""
        return ",".join(f"{self.listen_address}:{port}" for port in self.sentinel_ports)

    @property
    def url(self) -> str:
        return f"http://{self.listen_address}:{self.port}/"

    @property
    def dashboard_url(self) -> str | None:
        if self.dashboard_port is None:
            return None
        return f"http://{self.listen_address}:{self.dashboard_port}/"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LabConfig:
        known = set(cls.__dataclass_fields__)
        fields = {key: value for key, value in data.items() if key in known}
        fields["shop"] = ShopOptions.from_dict(data.get("shop"))
        return cls(**fields)  # type: ignore[arg-type]


def checked_config(
    mode: str,
    instances: int,
    affinity: str | None,
    db: str,
    port: int,
    redis_persistence: str,
    replication: str = "async",
    shop: ShopOptions | None = None,
) -> LabConfig:
    """The run a user asked for, before any port is chosen; ``LabError`` saying what to change.

    ``affinity`` None means the mode's default: ``cookie`` in sticky mode,
    ``none`` in the round-robin ones (which refuse any other).
    """
    if mode not in MODE_NAMES:
        raise LabError(f"unknown mode {mode!r}: choose one of {', '.join(MODE_NAMES)}")
    sticky = get_mode(mode).load_balancing is LoadBalancing.AFFINITY
    if affinity is not None and not sticky:
        raise LabError(f"--affinity applies to --mode sticky only; {mode} is balanced round robin")
    affinity = (affinity or "cookie") if sticky else "none"
    if affinity not in AFFINITIES:
        raise LabError(f"unknown affinity {affinity!r}: choose one of {', '.join(AFFINITIES)}")
    if db not in DATABASES:
        raise LabError(f"unknown database {db!r}: choose one of {', '.join(DATABASES)}")
    if redis_persistence not in REDIS_PERSISTENCE:
        raise LabError(f"--redis-persistence is one of {', '.join(REDIS_PERSISTENCE)}")
    if replication not in REPLICATION:
        raise LabError(f"--replication is one of {', '.join(REPLICATION)}")
    if not 1 <= instances <= 20:
        raise LabError("--instances must be between 1 and 20")
    if not 1 <= port <= 65535:
        raise LabError("--port must be between 1 and 65535")
    return LabConfig(
        mode=mode,
        instances=instances,
        affinity=affinity,
        db=db,
        port=port,
        redis_persistence=redis_persistence,
        replication=replication,
        shop=shop or ShopOptions(),
    )


class RunFolder:
    """Every path of one run folder (``.lab/`` by default)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.config = self.root / "lab.json"
        self.state = self.root / "state.json"
        self.secrets = self.root / "secrets.json"
        self.logs = self.root / "logs"
        self.nginx = self.root / "nginx"
        self.redis = self.root / "redis"
        self.sqlite = self.root / "shop.sqlite3"
        self.access_log = self.logs / "nginx-access.jsonl"
        # Written by the experiment runner while it runs: the dashboard follows it.
        self.experiment = self.root / "experiment.json"
        # The compose driver's list of drained instances (the native one keeps it in state.json).
        self.drained = self.root / "drained.json"
        # The bench's in-process engine measurements use a database of their own.
        self.bench_sqlite = self.root / "bench-engine.sqlite3"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def control_socket(self, name: str) -> Path:
        return self.root / f"{name}.ctl"

    def create(self) -> None:
        for folder in (self.root, self.logs, self.nginx, self.redis):
            folder.mkdir(parents=True, exist_ok=True)

    def read_config(self) -> LabConfig:
        return LabConfig.from_dict(json.loads(self.config.read_text(encoding="utf-8")))

    def write_config(self, config: LabConfig) -> None:
        write_json_atomically(self.config, config.to_dict())

    def keys(self) -> dict[str, str]:
        """SECRET_KEY, JWT_SIGNING_KEY and the session encryption key of this run folder.

        Made on first use (a folder from before the encryption key gets one
        added). Every instance must share them (a session signed by app1 is
        read by app2), the two signing keys must differ, and all outlive one
        ``up`` so a restarted cluster still accepts its users' cookies.
        """
        keys = json.loads(self.secrets.read_text(encoding="utf-8")) if self.secrets.exists() else {}
        added = missing_keys(keys)
        if added:
            keys.update(added)
            partial = self.secrets.with_name(f".{self.secrets.name}.{os.getpid()}.tmp")
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                json.dump(keys, file)
            partial.replace(self.secrets)
        return keys


def new_encryption_key() -> str:
    """A Fernet key (32 random bytes, URL-safe base64), made without importing cryptography."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def new_signing_key() -> str:
    """A SECRET_KEY or JWT_SIGNING_KEY: token_urlsafe never yields "$", which compose
    would try to interpolate, nor anything an env file would need quoted."""
    return secrets.token_urlsafe(50)


# The keys every instance of a deployment shares, and how each is made.
KEY_MAKERS = {
    "SECRET_KEY": new_signing_key,
    "JWT_SIGNING_KEY": new_signing_key,
    ENCRYPTION_KEY: new_encryption_key,
}


def missing_keys(
    current: Mapping[str, str], names: Iterable[str] = tuple(KEY_MAKERS)
) -> dict[str, str]:
    """Fresh values for the keys among ``names`` that ``current`` lacks (or has empty):
    a run folder's secrets.json, deploy/.env, a Kubernetes overlay's lab.env alike."""
    return {name: KEY_MAKERS[name]() for name in names if not current.get(name)}


def write_json_atomically(path: Path, data: object) -> None:
    """Write ``data`` so a reader sees the old file or the new one, never half of one."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(path)
