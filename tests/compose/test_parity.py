"""The compose deployment and the native cluster run the same lab: same instances, same
environment, same nginx configuration, same memcached nodes, same replicated store --
addresses and file locations aside."""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
from pathlib import Path
from unittest import mock

import pytest
import yaml

from sessions_lab.cluster import compose_files as compose_target
from sessions_lab.cluster import replication, serve
from sessions_lab.cluster.apps import app_env, gunicorn_spec, prepare_database_argv
from sessions_lab.cluster.binaries import Binary, find_binary
from sessions_lab.cluster.config import ENCRYPTION_KEY, LabConfig, RunFolder, ShopOptions
from sessions_lab.cluster.errors import LabError
from sessions_lab.cluster.memcached import memcached_argv
from sessions_lab.cluster.nginx import render_nginx_conf
from sessions_lab.modes import MODE_NAMES, get_mode
from tests.compose.conftest import TEST_KEYS, ComposeRun

CHOICES = [
    (mode, affinity) for mode in MODE_NAMES for affinity in compose_target.affinities_for(mode)
]
IDS = [f"{mode}-{affinity}" for mode, affinity in CHOICES]


def native_config(mode: str, affinity: str, db: str = "sqlite") -> LabConfig:
    """What the native `up --mode MODE --instances 3` decides, with its usual ports."""
    return LabConfig(
        mode=mode,
        instances=3,
        affinity=affinity,
        db=db,
        port=8080,
        redis_persistence="none",
        app_ports=[8101, 8102, 8103],
        redis_port=6380 if get_mode(mode).uses_redis else None,
        postgres_port=5433 if db == "postgres" else None,
        memcached_ports=[11212, 11213, 11214] if get_mode(mode).uses_memcached else [],
        primary_port=6380 if get_mode(mode).uses_replication else None,
        replica_ports=[6391, 6392, 6393] if get_mode(mode).uses_replication else [],
        sentinel_ports=[26381, 26382, 26383] if get_mode(mode).uses_replication else [],
    )


def native_run(tmp_path: Path) -> RunFolder:
    run = RunFolder(tmp_path / "lab")
    run.create()
    run.secrets.write_text(json.dumps(TEST_KEYS))  # the keys compose gets from .env
    return run


def native_environment(config: LabConfig, run: RunFolder, instance: str) -> dict[str, str]:
    """The variables the lab itself sets for an instance (none inherited from this shell)."""
    with mock.patch.dict(os.environ, {}, clear=True):
        return app_env(config, run, instance)


def compose_services(compose: ComposeRun, deploy: Path, **env: str) -> dict:
    resolved = compose(deploy / "docker-compose.yml", "config", "--format", "json", env=env)
    assert resolved.returncode == 0, resolved.stderr
    return json.loads(resolved.stdout)["services"]


def without_address(key: str, value: str) -> str:
    """A variable's value with its host, port or file location taken out."""
    if key in ("REDIS_URL", "REDIS_REPLICA_URL"):  # whose replica: test_replicated_…
        return re.sub(r"//[^/]+/", "//HOST/", value)
    if key in ("MEMCACHED_SERVERS", "REDIS_SENTINELS"):  # the order: test_memcached_nodes_…
        return re.sub(r"[^,]+:\d+", "HOST:PORT", value)
    if key == "DATABASE_URL":
        return re.sub(r"^(\w+)://.*$", r"\1://LOCATION", value)
    return value


@pytest.mark.parametrize(("mode", "db"), [(m, "sqlite") for m in MODE_NAMES] + [("db", "postgres")])
def test_app_services_get_the_native_environment(
    compose: ComposeRun, deploy_copy: Path, tmp_path: Path, mode: str, db: str
) -> None:
    config = native_config(mode, "cookie" if mode == "sticky" else "none", db)
    run = native_run(tmp_path)
    database_url = compose_target.POSTGRES_URL if db == "postgres" else compose_target.SQLITE_URL
    services = compose_services(compose, deploy_copy, SESSION_MODE=mode, DATABASE_URL=database_url)

    assert compose_target.app_services(deploy_copy) == config.app_names
    assert sorted(s for s in services if re.fullmatch(r"app\d+", s)) == config.app_names
    for name in config.app_names:
        native = native_environment(config, run, name)
        container = dict(services[name]["environment"])
        # Addresses that exist only because nginx is not on loopback here:
        # Locust's Host inside the network, and nginx's address for the login
        # throttle (natively the settings' default, 127.0.0.1, is nginx).
        assert set(container.pop("ALLOWED_HOSTS").split(",")) == {
            *native.pop("ALLOWED_HOSTS").split(","),
            "nginx",
        }
        assert container.pop("TRUSTED_PROXIES") == "172.30.80.10"
        # One compose file serves every mode; a mode without Redis (or memcached,
        # or the replicated store) never reads its address.
        for variable, elsewhere in (
            ("REDIS_URL", "redis://x:1/0"),
            ("MEMCACHED_SERVERS", "x:1,y:2"),
            ("REDIS_SENTINELS", "x:1,y:2"),
            ("REDIS_REPLICA_URL", "redis://x:1/0"),
            ("SESSION_REPLICATION", "sync"),
        ):
            if variable not in native:
                assert get_mode(mode).settings({variable: elsewhere}) == get_mode(mode).settings({})
                container.pop(variable)
        assert container.keys() == native.keys()
        assert {k: without_address(k, v) for k, v in container.items()} == {
            k: without_address(k, v) for k, v in native.items()
        }
        assert container["DATABASE_URL"].startswith(native["DATABASE_URL"].split(":")[0])


SHOP_VARIABLES = ("CART_STORE", "SESSION_ENCRYPTION_KEYS", "SESSION_IDLE_S", "SESSION_ABSOLUTE_S")


def test_the_shop_options_reach_the_containers_as_they_reach_native_instances(
    compose: ComposeRun, deploy_copy: Path, tmp_path: Path
) -> None:
    config = native_config("redis", "none")
    config.shop = ShopOptions("rows", encrypt_sessions=True, session_idle=5, session_absolute=60)
    run = native_run(tmp_path)
    native = native_environment(config, run, "app1")
    key = run.keys()[ENCRYPTION_KEY]
    assert {name: native[name] for name in SHOP_VARIABLES} == {
        "CART_STORE": "rows",
        "SESSION_ENCRYPTION_KEYS": key,
        "SESSION_IDLE_S": "5",
        "SESSION_ABSOLUTE_S": "60",
    }
    # What `experiment --driver compose` writes into deploy/.env for the same options.
    from_env = config.shop.env(key)
    services = compose_services(compose, deploy_copy, SESSION_MODE="redis", **from_env)
    container = dict(services["app1"]["environment"])
    assert {name: container[name] for name in SHOP_VARIABLES} == from_env
    assert ShopOptions.from_env(container) == config.shop


def test_migrate_runs_the_native_prepare_script(compose: ComposeRun, deploy_copy: Path) -> None:
    services = compose_services(compose, deploy_copy, LAB_DEMO_USERS="25")
    config = native_config("db", "none")
    config.demo_users = 25
    native = prepare_database_argv(config)
    assert services["migrate"]["entrypoint"] + services["migrate"]["command"] == [
        "python",
        *native[1:],
    ]


@pytest.mark.parametrize("mode", MODE_NAMES)
def test_gunicorn_in_a_container_has_the_native_shape(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSION_MODE", mode)
    container = runpy.run_path(str(compose_target.DEPLOY_DIR / "gunicorn.conf.py"))
    argv = gunicorn_spec(native_config(mode, "none"), RunFolder(tmp_path), "app1", 8101).argv
    flag = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
    assert "--preload" in argv and container["preload_app"] is True
    assert container["workers"] == int(flag["--workers"])
    assert container["threads"] == int(flag["--threads"])
    assert container["graceful_timeout"] == int(flag["--graceful-timeout"])
    assert container["keepalive"] == int(flag["--keep-alive"])


# ---------------------------------------------------------------------- memcached


def test_memcached_nodes_are_the_native_ones(
    compose: ComposeRun, deploy_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose_services(compose, deploy_copy, SESSION_MODE="memcached")
    config = native_config("memcached", "none")
    nodes = compose_target.memcached_services(deploy_copy)
    # One node per instance, named as natively, so `kill memcached2` means the same node.
    assert nodes == config.memcached_names
    assert len(nodes) == len(compose_target.app_services(deploy_copy))
    # The native flags, listening on the container's every interface as nginx
    # and Valkey do; the image's user (never root) needs no -u.
    monkeypatch.setattr("sessions_lab.cluster.memcached.os.geteuid", lambda: 10001)
    on_path = Binary("memcached", Path("memcached"), "PATH", (1, 6))
    for name in nodes:
        assert services[name]["command"] == memcached_argv(
            on_path,
            "0.0.0.0",  # noqa: S104 - inside the container; only the lab network reaches it
            compose_target.MEMCACHED_PORT,
        )
    # Every instance lists every node, in node order: natively by port
    # (memcached1 on the first), here by name.
    run = native_run(tmp_path)
    for app in config.app_names:
        native = native_environment(config, run, app)["MEMCACHED_SERVERS"].split(",")
        container = services[app]["environment"]["MEMCACHED_SERVERS"].split(",")
        assert native == [f"127.0.0.1:{port}" for port in config.memcached_ports]
        assert container == [f"{name}:{compose_target.MEMCACHED_PORT}" for name in nodes]
        location = get_mode("memcached").settings(services[app]["environment"])["CACHES"]
        assert location["sessions"]["LOCATION"] == container


# ---------------------------------------------------------------------- the replicated store

# Lines that name an address, a port or a folder; all else must match.
REPLICATION_ADDRESS_LINE = re.compile(r"^(bind|port|dir|replicaof)\b.*$", re.M)
# Under compose each server announces the name the others reach it by (natively
# an empty line: loopback addresses need no announcing).
ANNOUNCE_LINE = re.compile(r"^(replica-announce-ip|sentinel announce-ip) (\S+)$", re.M)


def without_addresses(conf: str) -> str:
    conf = ANNOUNCE_LINE.sub("", conf)
    conf = re.sub(r"^(sentinel monitor \S+) \S+ \d+ ", r"\1 HOST PORT ", conf, flags=re.M)
    return REPLICATION_ADDRESS_LINE.sub(lambda line: f"{line.group(1)} <address>", conf)


def test_replicated_servers_are_the_native_ones(
    compose: ComposeRun, deploy_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose_services(compose, deploy_copy, SESSION_MODE="replicated")
    config = native_config("replicated", "none")
    run = native_run(tmp_path)
    # Named as natively, so `kill redis-primary` or `start sentinel2` means the same server.
    assert compose_target.replica_services(deploy_copy) == config.replica_names
    assert compose_target.sentinel_services(deploy_copy) == config.sentinel_names
    valkey = find_binary("redis")
    monkeypatch.setattr(serve, "tool", lambda name: Path("/usr/local/bin") / name)
    monkeypatch.setattr(serve, "SENTINEL_CONF", tmp_path / "sentinel-copy.conf")
    natively = [(replication.PRIMARY, replication.server_spec)]
    natively += [(name, replication.server_spec) for name in config.replica_names]
    natively += [(name, replication.sentinel_spec) for name in config.sentinel_names]
    execs: list[list[str]] = []
    monkeypatch.setattr(serve, "exec_", lambda binary, *args: execs.append([binary, *args]))
    for name, spec_of in natively:
        native = spec_of(config, run, valkey, name)
        command = services[name]["command"]
        rendered = deploy_copy / "replication" / Path(command[-1]).name
        # The same file, from the same template, addresses aside: what each
        # server replicates and how a Sentinel decides are identical.
        native_conf = Path(native.argv[1]).read_text()
        assert without_addresses(rendered.read_text()) == without_addresses(native_conf), name
        assert ANNOUNCE_LINE.findall(native_conf) == []
        assert [found[1] for found in ANNOUNCE_LINE.findall(rendered.read_text())] == [name]
        # The same command line: valkey-server CONF, and --sentinel for a Sentinel.
        execs.clear()
        serve.main([command[-2], str(rendered)])
        [argv] = execs
        assert Path(argv[0]).name == "valkey-server" == Path(native.argv[0]).name
        assert argv[2:] == native.argv[2:]
        # The same health check: PING for the primary and a Sentinel, a live link for a
        # replica (under compose, a promoted one is ready too: test_compose_config).
        kind = services[name]["healthcheck"]["test"][-1]
        assert (kind == "replica") is (native.health == "replica")
        assert native.role == kind
    # Natively each addresses the others on loopback; under compose by service name.
    replica_conf = (deploy_copy / "replication" / "app1-replica.conf").read_text()
    assert f"replicaof {replication.PRIMARY} {compose_target.REPLICATED_PORT}\n" in replica_conf
    for app in config.app_names:
        native = native_environment(config, run, app)
        container = services[app]["environment"]
        assert native["REDIS_REPLICA_URL"] == (
            f"redis://127.0.0.1:{config.replica_ports[config.app_names.index(app)]}/0"
        )
        assert container["REDIS_REPLICA_URL"] == f"redis://{app}-replica:6379/0"
        assert container["REDIS_SENTINELS"].split(",") == [
            f"{name}:{compose_target.SENTINEL_PORT}" for name in config.sentinel_names
        ]
        assert len(native["REDIS_SENTINELS"].split(",")) == len(config.sentinel_names)
        settings = get_mode("replicated").settings(container)["SESSION_REPLICATION"]
        assert settings["SENTINELS"] == [(name, 26379) for name in config.sentinel_names]


# ---------------------------------------------------------------------- nginx

# Lines that name an address or a file location; everything else must match.
LOCATION_LINE = re.compile(
    r"^\s*(pid|error_log|access_log|\w+_temp_path|listen|set_real_ip_from)\s.*$", re.M
)


def normalised(conf: str, upstreams: dict[str, str]) -> str:
    # Natively, as root with a run folder others cannot enter (pytest's tmp
    # folders), workers run as root to reach it: a file location, again.
    conf = re.sub(r"^user root;$", "", conf, flags=re.M)
    for name, address in upstreams.items():
        conf = conf.replace(f"server {address} ", f"server <{name}> ")
    return LOCATION_LINE.sub(lambda line: f"{line.group(1)} <location>", conf)


@pytest.mark.parametrize(("mode", "affinity"), CHOICES, ids=IDS)
def test_nginx_differs_from_native_only_in_addresses(
    deploy_copy: Path, tmp_path: Path, mode: str, affinity: str
) -> None:
    config = native_config(mode, affinity)
    native = render_nginx_conf(
        config, native_run(tmp_path), compose_target.nginx_version(), config.app_names
    )
    rendered = (deploy_copy / "nginx" / f"{mode}-{affinity}.conf").read_text()

    native_upstreams = {
        n: f"127.0.0.1:{p}" for n, p in zip(config.app_names, config.app_ports, strict=True)
    }
    compose_upstreams = {n: f"{n}:8000" for n in config.app_names}
    assert normalised(rendered, compose_upstreams) == normalised(native, native_upstreams)
    for name in config.app_names:
        assert f"server {name}:8000 " in rendered


def test_a_drained_instance_leaves_the_rendered_upstream(deploy_copy: Path) -> None:
    path = compose_target.render_nginx_variant("redis", "none", ["app1", "app3"], deploy_copy)
    conf = path.read_text()
    assert "server app1:8000 " in conf and "server app3:8000 " in conf
    assert "app2" not in conf


@pytest.mark.parametrize("affinity", ["cookie", "ip", "route"])
def test_compose_nginx_configuration_passes_nginx_t(
    deploy_copy: Path, tmp_path: Path, affinity: str
) -> None:
    """The container's file, with only the names this machine cannot resolve and the
    folders it cannot write swapped for local ones."""
    conf = (deploy_copy / "nginx" / f"sticky-{affinity}.conf").read_text()
    conf = re.sub(r"server app(\d):8000", r"server 127.0.0.1:1810\1", conf)
    conf = conf.replace("/var/cache/nginx", str(tmp_path)).replace("/run/", f"{tmp_path}/")
    (tmp_path / "nginx.conf").write_text(conf)
    checked = subprocess.run(
        [str(find_binary("nginx").path), "-t", "-q", "-p", str(tmp_path), "-c", "nginx.conf"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


# ---------------------------------------------------------------------- the compose file itself


def test_fixed_addresses_agree_between_the_compose_file_and_the_renderer() -> None:
    written = (compose_target.DEPLOY_DIR / "docker-compose.yml").read_text()
    # Every address is under one prefix a .env may change; read with its default.
    prefix = f"${{LAB_SUBNET_PREFIX:-{compose_target.SUBNET_PREFIX}}}"
    assert written.count(prefix) >= 10 and "172.30." not in written.replace(prefix, "")
    document = yaml.safe_load(written.replace(prefix, compose_target.SUBNET_PREFIX))
    services = document["services"]
    subnet = document["networks"]["lab"]["ipam"]["config"][0]["subnet"]
    assert subnet == f"{compose_target.SUBNET_PREFIX}.0/24"
    hosts = dict(entry.split(":") for entry in services["nginx"]["extra_hosts"])
    for name in compose_target.app_services():
        assert hosts[name] == services[name]["networks"]["lab"]["ipv4_address"]
    # The instances reach each memcached node and each server of the replicated
    # store by its fixed address too; those servers reach one another so.
    address = {
        name: s["networks"]["lab"]["ipv4_address"]
        for name, s in services.items()
        if "networks" in s and isinstance(s["networks"], dict)
    }
    stores = compose_target.replication_services()
    for name in compose_target.app_services():
        hosts = dict(entry.split(":") for entry in services[name]["extra_hosts"])
        assert hosts == {n: address[n] for n in [*compose_target.memcached_services(), *stores]}
    for name in stores:
        hosts = dict(entry.split(":") for entry in services[name]["extra_hosts"])
        assert hosts == {n: address[n] for n in stores}
    assert len(set(address.values())) == len(address)  # no two services share one
    nginx_address = services["nginx"]["networks"]["lab"]["ipv4_address"]
    assert services["app1"]["environment"]["TRUSTED_PROXIES"] == nginx_address
    assert "--host" in services["locust"]["command"]
    assert f"http://nginx:{compose_target.NGINX_PORT}" in services["locust"]["command"]
    # The load as `experiment --load-workers` makes it: a master, workers that find it by name.
    assert "--master" in services["locust"]["command"]
    assert services["locust-worker"]["command"][-3:] == ["--worker", "--master-host", "locust"]
    assert services["locust-worker"]["deploy"]["replicas"] == "${LOCUST_WORKERS:-2}"
    assert services["nginx"]["ports"] == ["127.0.0.1:${LAB_PORT:-8080}:8080"]
    assert services["locust"]["ports"] == ["127.0.0.1:${LOCUST_PORT:-8089}:8089"]
    assert compose_target.nginx_version() >= (1, 29, 6)  # open-source sticky


def test_the_subnet_comes_from_the_env_file_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    assert compose_target.lab_subnet(tmp_path) == "172.30.80.0/24"  # no .env yet
    (tmp_path / ".env").write_text("LAB_SUBNET_PREFIX=10.99.7\n")
    assert compose_target.lab_subnet(tmp_path) == "10.99.7.0/24"
    (tmp_path / ".env").write_text("LAB_SUBNET_PREFIX=10.99.7.0/24\n")
    with pytest.raises(LabError, match="three numbers"):
        compose_target.lab_subnet(tmp_path)
