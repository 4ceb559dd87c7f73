"""The mode registry and the settings it drives, including how a bad configuration fails.

Also that the registry decides behaviour: each record's answers are pinned
here, a mode that exists only as a record is predicted for like the mode it
copies, and no code outside ``modes.py`` compares a mode's name.
"""

import ast
import dataclasses
import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessions_lab import attack
from sessions_lab.experiments.scenarios import SCENARIOS, stores
from sessions_lab.modes import (
    MODE_NAMES,
    MODES,
    Credential,
    LoadBalancing,
    OutageLogout,
    StoreServer,
    get_mode,
)

ROOT = Path(__file__).resolve().parent.parent
KEYS = {
    "SECRET_KEY": "a-long-random-production-like-secret-key-with-enough-entropy-0123456789abcdef",
    "JWT_SIGNING_KEY": "another-long-random-production-like-jwt-signing-key-0123456789abcdef",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "SESSION_MODE", "COOKIE_SECURE", *KEYS}
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "sessions_lab.settings",
            "DATABASE_URL": "sqlite:///:memory:",
            **env,
        },
    )


def test_there_are_exactly_the_eight_modes_of_the_design() -> None:
    assert MODE_NAMES == (
        "sticky",
        "redis",
        "db",
        "cached_db",
        "cookie",
        "jwt",
        "memcached",
        "replicated",
    )


def test_only_sticky_needs_affinity() -> None:
    pinned = [m.name for m in MODES.values() if m.load_balancing is LoadBalancing.AFFINITY]
    assert pinned == ["sticky"]


def test_an_unknown_mode_names_the_valid_ones() -> None:
    with pytest.raises(
        ValueError, match="sticky, redis, db, cached_db, cookie, jwt, memcached, replicated"
    ):
        get_mode("bogus")


def test_shop_refuses_to_start_with_a_bogus_mode() -> None:
    done = manage("check", SESSION_MODE="bogus", **KEYS)
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    assert (
        "Unknown SESSION_MODE 'bogus'. Valid modes: sticky, redis, db, cached_db, cookie, jwt, "
        "memcached, replicated." in done.stderr
    )


def test_production_refuses_to_start_without_keys() -> None:
    done = manage("check", SESSION_MODE="db")
    assert done.returncode != 0
    assert "SECRET_KEY and JWT_SIGNING_KEY must be set" in done.stderr


def test_the_two_keys_must_differ() -> None:
    done = manage(
        "check",
        SESSION_MODE="db",
        SECRET_KEY=KEYS["SECRET_KEY"],
        JWT_SIGNING_KEY=KEYS["SECRET_KEY"],
    )
    assert "must differ" in done.stderr


@pytest.mark.parametrize("mode", MODE_NAMES)
def test_deploy_check_has_no_session_cookie_warnings(mode: str) -> None:
    done = manage("check", "--deploy", SESSION_MODE=mode, **KEYS)
    assert "SESSION_COOKIE" not in done.stdout + done.stderr
    assert "CSRF_COOKIE" not in done.stdout + done.stderr
    assert "security.W009" not in done.stderr  # the key is strong enough


def test_cookie_flags_follow_cookie_secure(settings) -> None:
    from sessions_lab import settings as shop_settings

    assert shop_settings.SESSION_COOKIE_HTTPONLY is True
    assert shop_settings.SESSION_COOKIE_SAMESITE == "Lax"
    # JSON, never pickle (encrypted with keys set: tests/test_session_encryption.py).
    assert shop_settings.SESSION_SERIALIZER == "shop.sessions.encryption.SessionSerializer"
    assert shop_settings.SESSION_COOKIE_SECURE is False  # the test run sets COOKIE_SECURE=0


def test_session_cookie_is_secure_by_default_outside_debug() -> None:
    done = manage(
        "shell",
        "-c",
        "from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE)",
        SESSION_MODE="db",
        **KEYS,
    )
    assert done.stdout.splitlines()[-1] == "True True", done.stderr


# ------------------------------------------------------------ what each record answers


def modes_where(predicate) -> list[str]:
    return [mode.name for mode in MODES.values() if predicate(mode)]


def test_only_sticky_loses_sessions_when_an_instance_dies() -> None:
    assert modes_where(lambda m: not m.keeps_sessions_on_instance_death) == ["sticky"]


def test_where_each_mode_keeps_its_state_on_a_server_of_its_own() -> None:
    assert {m.name: m.store_server for m in MODES.values()} == {
        "sticky": StoreServer.NONE,
        "redis": StoreServer.REDIS,
        "db": StoreServer.DATABASE,
        "cached_db": StoreServer.REDIS,
        "cookie": StoreServer.NONE,
        "jwt": StoreServer.DATABASE,  # the cart rows
        "memcached": StoreServer.MEMCACHED,
        "replicated": StoreServer.REPLICATED,
    }


def test_the_modes_on_redis_are_the_ones_the_lab_starts_redis_for() -> None:
    assert modes_where(lambda m: m.uses_redis) == ["redis", "cached_db"]


def test_only_memcached_shards_its_sessions_over_nodes_the_lab_starts() -> None:
    assert modes_where(lambda m: m.uses_memcached) == ["memcached"]
    assert get_mode("memcached").settings({"MEMCACHED_SERVERS": "h:1, h:2,h:3"})["CACHES"][
        "sessions"
    ]["LOCATION"] == ["h:1", "h:2", "h:3"]


def test_only_replicated_runs_a_primary_replicas_and_sentinels_read_from_its_env() -> None:
    assert modes_where(lambda m: m.uses_replication) == ["replicated"]
    env = {"REDIS_SENTINELS": "h:1, h:2,h:3", "SESSION_REPLICATION": "sync"}
    replication = get_mode("replicated").settings(env)["SESSION_REPLICATION"]
    assert replication["SENTINELS"] == [("h", 1), ("h", 2), ("h", 3)]
    assert replication["SYNC"] is True
    assert get_mode("replicated").settings({})["SESSION_REPLICATION"]["SYNC"] is False
    with pytest.raises(ValueError, match="choose one of async, sync"):
        get_mode("replicated").settings({"SESSION_REPLICATION": "eventually"})


def test_only_cached_db_keeps_every_session_when_redis_comes_back_empty() -> None:
    assert modes_where(lambda m: m.backed_by_database) == ["cached_db"]


def test_only_cookie_and_jwt_cannot_revoke_a_copied_credential_at_logout() -> None:
    assert modes_where(lambda m: not m.logout_revokes_credential) == ["cookie", "jwt"]


def test_a_logout_the_store_cannot_complete_is_refused_unless_the_store_is_sharded() -> None:
    assert {m.name: m.logout_while_store_down for m in MODES.values()} == {
        "sticky": OutageLogout.NO_STORE_SERVER,
        "redis": OutageLogout.REFUSED,
        "db": OutageLogout.REFUSED,
        "cached_db": OutageLogout.REFUSED,
        "cookie": OutageLogout.NO_STORE_SERVER,
        "jwt": OutageLogout.REFUSED,
        # Sharded: an unreachable node's sessions are not found, a paused node's return.
        "memcached": OutageLogout.COPY_SURVIVES,
        # The delete needs the primary the Sentinels name: none, refused.
        "replicated": OutageLogout.REFUSED,
    }
    assert modes_where(lambda m: m.logout_while_store_down is OutageLogout.NO_STORE_SERVER) == (
        modes_where(lambda m: m.store_server is StoreServer.NONE)
    )


def test_the_readme_table_shows_each_logout_promise_in_the_registrys_words() -> None:
    readme = (ROOT / "README.md").read_text()
    for mode in MODES.values():
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{mode.name}` |"))
        assert row.endswith(f"| {mode.logout_while_store_down_text} |"), row


def test_what_the_client_carries_in_each_mode() -> None:
    assert {m.name: m.credential for m in MODES.values()} == {
        "sticky": Credential.SESSION_ID,
        "redis": Credential.SESSION_ID,
        "db": Credential.SESSION_ID,
        "cached_db": Credential.SESSION_ID,
        "cookie": Credential.SIGNED_SESSION,
        "jwt": Credential.JWT,
        "memcached": Credential.SESSION_ID,
        "replicated": Credential.SESSION_ID,
    }
    assert modes_where(lambda m: m.is_jwt) == modes_where(lambda m: m.credential is Credential.JWT)


def test_a_mode_that_cannot_revoke_has_its_reason_in_the_attack_table() -> None:
    for mode in MODES.values():
        if not mode.logout_revokes_credential:
            assert attack.WHY_LOGOUT_CANNOT_REVOKE[mode.credential], mode.name


def test_a_new_mode_is_predicted_for_from_its_record_alone(monkeypatch) -> None:
    """A copy of a record under a new name behaves exactly as the original, everywhere."""
    for original in MODE_NAMES:
        twin = f"{original}-twin"
        monkeypatch.setitem(MODES, twin, dataclasses.replace(MODES[original], name=twin))
        for db in ("sqlite", "postgres"):
            for persistence in ("none", "aof"):
                assert stores(twin, db, persistence) == stores(original, db, persistence)
                for scenario in SCENARIOS.values():
                    mine = scenario.expectation(twin, db, persistence)
                    theirs = scenario.expectation(original, db, persistence)
                    assert (mine and mine.text) == (theirs and theirs.text), (scenario.name, twin)
        notes = attack.table({original: []}).split("\n\n", 1)[1]
        assert attack.table({twin: []}).split("\n\n", 1)[1] == notes.replace(
            f"{original}:", f"{twin}:"
        )


# ------------------------------------------------- nobody else compares a mode's name

# Names that are only ever modes; "redis", "db" and "cookie" are also a
# server role, the --db option and an affinity technique, so they count as
# mode names only next to something that holds a mode.
ONLY_MODE_NAMES = {"sticky", "cached_db", "jwt"}


def _holds_a_mode(node: ast.AST) -> bool:
    """``mode``, ``mode_name``, ``modes``, ``self.mode``, ``settings.SESSION_MODE``,
    ``env["SESSION_MODE"]``, ``env.get("SESSION_MODE")``, ``x.mode.name``, ``get_mode(x).name``."""
    if isinstance(node, ast.Name):
        return "mode" in node.id.lower()
    if isinstance(node, ast.Attribute):
        if node.attr == "name":
            return _holds_a_mode(node.value)
        return "mode" in node.attr.lower()
    if isinstance(node, ast.Subscript):
        return _holds_a_mode(node.slice) or _holds_a_mode(node.value)
    if isinstance(node, ast.Call):
        return _holds_a_mode(node.func) or any(_holds_a_mode(arg) for arg in node.args)
    if isinstance(node, ast.Constant):
        return node.value == "SESSION_MODE"
    return False


def _mode_names_in(node: ast.AST) -> set[str]:
    """The mode names a literal spells: a string, or a tuple, list, set or dict of them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value} & set(MODE_NAMES)
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return set().union(*(_mode_names_in(element) for element in node.elts))
    if isinstance(node, ast.Dict):
        return set().union(*(_mode_names_in(key) for key in node.keys if key is not None))
    return set()


def mode_name_comparisons(source: str) -> Iterator[tuple[int, str]]:
    """(line, code) of each place ``source`` decides by a mode's name."""
    for node in ast.walk(ast.parse(source)):
        sides: list[tuple[ast.AST, ast.AST]] = []
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            sides = list(itertools.pairwise(operands))
            sides += [(b, a) for a, b in sides]
        elif isinstance(node, ast.Subscript):  # {"sticky": …}[mode.name]
            sides = [(node.slice, node.value)]
        elif isinstance(node, ast.Match):
            sides = [
                (node.subject, pattern.value)
                for case in node.cases
                for pattern in ast.walk(case.pattern)
                if isinstance(pattern, ast.MatchValue)
            ]
        for holder, literal in sides:
            names = _mode_names_in(literal)
            if names & ONLY_MODE_NAMES or (names and _holds_a_mode(holder)):
                yield node.lineno, ast.get_source_segment(source, node) or ""
                break


def shop_and_lab_sources() -> list[Path]:
    paths = sorted((ROOT / "sessions_lab").rglob("*.py")) + sorted((ROOT / "shop").rglob("*.py"))
    return [path for path in paths if path != ROOT / "sessions_lab" / "modes.py"]


def test_no_code_outside_the_registry_compares_a_mode_name() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {code}"
        for path in shop_and_lab_sources()
        for line, code in mode_name_comparisons(path.read_text())
    ]
    assert found == [], "decide from a field of sessions_lab.modes.Mode instead:\n" + "\n".join(
        found
    )


@pytest.mark.parametrize(
    "code",
    [
        'if mode == "sticky":\n    pass',
        'if mode != "cookie":\n    pass',
        'x = mode in ("redis", "cached_db")',
        'x = "db" in modes',
        'x = mode.name == "db"',
        'x = get_mode(name).name == "redis"',
        'x = settings.SESSION_MODE == "jwt"',
        'x = os.environ["SESSION_MODE"] == "cookie"',
        'x = self.config.mode == "redis"',
        'x = {"sticky": 1, "redis": 2}[mode.name]',
        'x = "jwt" in results',
        'match mode:\n    case "sticky":\n        pass',
    ],
)
def test_the_scan_finds_a_decision_by_mode_name(code: str) -> None:
    assert list(mode_name_comparisons(code)), code


@pytest.mark.parametrize(
    "code",
    [
        'x = role == "redis"',
        'x = child.role == "redis"',
        'x = "redis" in self.children',
        'x = db == "postgres"',
        'x = config.affinity != "cookie"',
        'x = {"cookie": 1}[affinity]',
        "x = mode.store_server is StoreServer.REDIS",
    ],
)
def test_the_scan_leaves_roles_and_options_alone(code: str) -> None:
    assert not list(mode_name_comparisons(code)), code


def test_the_scan_fails_on_a_mode_name_written_into_the_scenarios() -> None:
    source = (ROOT / "sessions_lab" / "experiments" / "scenarios.py").read_text()
    assert not list(mode_name_comparisons(source))
    assert list(mode_name_comparisons(source + '\nif mode == "sticky":\n    pass\n'))
