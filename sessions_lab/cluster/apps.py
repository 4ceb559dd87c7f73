"""The shop's app instances: gunicorn command lines and the environment of each.

Every instance runs the same Django project with the same keys, mode and
database; only ``INSTANCE_NAME`` and the port differ. The same environment
prepares the database (migrations, demo users) before nginx sends traffic.
"""

from __future__ import annotations

import os
import signal
import sys

from sessions_lab.cluster.config import ENCRYPTION_KEY, LabConfig, RunFolder
from sessions_lab.cluster.processes import ProcessSpec
from sessions_lab.modes import LoadBalancing, get_mode
from sessions_lab.paths import PROJECT_ROOT

WSGI_APP = "sessions_lab.wsgi:application"
# gunicorn waits this long for requests in flight after SIGTERM; short, so
# `down` and `kill --signal TERM` finish quickly, long enough for any request
# of the shop.
GRACEFUL_TIMEOUT = 5
# How long gunicorn keeps an idle connection. nginx lets its idle ones go
# after 2 s (its upstream keepalive_timeout), so they close first anyway.
# An hour, longer than any hang the lab makes (hang-one: 40% of a run of at
# most an hour): a worker resuming from a SIGSTOP closes each kept-alive
# connection whose keep-alive ran out meanwhile before it reads the request
# waiting there. With 5 s, the first request nginx sent to the hung app2
# was dropped, neither answered nor applied, in each of the 4 hang-one runs
# traced with gunicorn's access log (a write so dropped was missing from the
# report's late writes, and once no late write was left to report).
KEEP_ALIVE = 3600


def database_url(config: LabConfig, run: RunFolder, name: str | None = None) -> str:
    """The shop's database, or on PostgreSQL the lab server's database ``name``."""
    if config.db == "postgres":
        from sessions_lab.cluster.postgres import DATABASE, SUPERUSER

        address = f"{config.listen_address}:{config.postgres_port}"
        return f"postgres://{SUPERUSER}@{address}/{name or DATABASE}"
    return f"sqlite:///{run.sqlite}"


def app_env(config: LabConfig, run: RunFolder, instance: str) -> dict[str, str]:
    """The environment of instance ``instance`` (and of the preparing commands)."""
    env = dict(os.environ)
    keys = run.keys()
    encryption_key = keys.pop(ENCRYPTION_KEY)
    env.update(keys)
    env.update(config.shop.env(encryption_key))
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "sessions_lab.settings",
            "SESSION_MODE": config.mode,
            "INSTANCE_NAME": instance,
            "DATABASE_URL": database_url(config, run),
            # The lab serves plain http on loopback: a Secure cookie would
            # never come back (the session inspector says so).
            "COOKIE_SECURE": "0",
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DEMO_PASSWORD": env.get("DEMO_PASSWORD", "demo-password"),
            # The shop's footer links to the lab's dashboard (the shop imports
            # nothing from the lab: a URL in its environment is all it knows).
            "LAB_DASHBOARD_URL": config.dashboard_url or env.get("LAB_DASHBOARD_URL", ""),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if config.redis_port is not None:
        env["REDIS_URL"] = f"redis://{config.listen_address}:{config.redis_port}/0"
    if config.memcached_ports:
        # Every node in node order, for every instance (app4 too): they must hash alike.
        env["MEMCACHED_SERVERS"] = config.memcached_servers
    if config.sentinel_ports:
        env["REDIS_SENTINELS"] = config.sentinels
        env["SESSION_REPLICATION"] = config.replication
        # Its own replica; an instance added later has none and reads from the primary.
        replica = f"{instance}-replica"
        env["REDIS_REPLICA_URL"] = (
            f"redis://{config.listen_address}:"
            f"{config.replica_ports[config.replica_names.index(replica)]}/0"
            if replica in config.replica_names
            else ""
        )
    return env


def worker_shape(mode: str) -> tuple[int, int]:
    """gunicorn workers and threads per worker for an instance in ``mode``."""
    # Few threads: every thread of a worker waits for the same GIL, and
    # gunicorn's threaded worker pays for each one on every request. Measured
    # with `sessions-lab bench` (docs/performance.md): 1x4 and 2x2 serve more
    # than 1x8 and 2x4, for /healthz and the cart alike.
    if get_mode(mode).load_balancing is LoadBalancing.AFFINITY:
        # Sessions in local memory are per process: one worker, threads for
        # concurrency, or a client would meet a stranger worker half the time.
        return 1, 4
    # Two cores for everything (nginx, Redis, the load generator): keep
    # each instance small.
    return 2, 2


def gunicorn_spec(config: LabConfig, run: RunFolder, instance: str, port: int) -> ProcessSpec:
    """How to run instance ``instance`` on ``port``."""
    workers, threads = worker_shape(config.mode)
    argv = [
        sys.executable, "-m", "gunicorn", WSGI_APP,
        "--bind", f"{config.listen_address}:{port}",
        "--name", instance,
        "--workers", str(workers),
        "--threads", str(threads),
        # The master imports the app once, so a broken import fails the
        # instance at once (with the traceback in its log) instead of
        # workers crashing in a loop, and workers fork ready.
        "--preload",
        "--graceful-timeout", str(GRACEFUL_TIMEOUT),
        "--keep-alive", str(KEEP_ALIVE),
        # gunicorn 27 puts one control socket in $HOME for every instance.
        "--control-socket", str(run.control_socket(instance)),
    ]  # fmt: skip
    return ProcessSpec(
        name=instance,
        role="app",
        argv=argv,
        cwd=PROJECT_ROOT,
        log=run.log(instance),
        port=port,
        health="http:/healthz",
        env=app_env(config, run, instance),
        # `down` discards what an instance holds (its local sessions too) and a
        # database commit is atomic: nothing is worth gunicorn's own shutdown
        # (~0.5-0.8 s even with SIGQUIT). A stale control socket is replaced
        # by gunicorn on the next start.
        quick_stop_signal=signal.SIGKILL,
    )


def prepare_database_argv(config: LabConfig) -> list[str]:
    """Migrations, then the demo users, in one Python process (one Django start-up)."""
    script = (
        "import django; django.setup(); "
        "from django.core.management import call_command; "
        "call_command('migrate', interactive=False, verbosity=1); "
        f"call_command('create_demo_users', '{config.demo_users}')"
    )
    return [sys.executable, "-c", script]
