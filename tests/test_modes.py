"""The mode registry and the settings it drives, including how a bad configuration fails."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sessions_lab.modes import MODE_NAMES, MODES, LoadBalancing, get_mode

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


def test_there_are_exactly_the_six_modes_of_the_design() -> None:
    assert MODE_NAMES == ("sticky", "redis", "db", "cached_db", "cookie", "jwt")


def test_only_sticky_needs_affinity() -> None:
    pinned = [m.name for m in MODES.values() if m.load_balancing is LoadBalancing.AFFINITY]
    assert pinned == ["sticky"]


def test_an_unknown_mode_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="sticky, redis, db, cached_db, cookie, jwt"):
        get_mode("bogus")


def test_shop_refuses_to_start_with_a_bogus_mode() -> None:
    done = manage("check", SESSION_MODE="bogus", **KEYS)
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    assert (
        "Unknown SESSION_MODE 'bogus'. Valid modes: sticky, redis, db, cached_db, cookie, jwt."
        in done.stderr
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
    assert shop_settings.SESSION_SERIALIZER.endswith("JSONSerializer")
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
