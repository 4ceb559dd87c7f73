"""``sessions-lab attack``: the security promise of each mode, demonstrated on a running cluster.

Each demonstration is an attack a workshop can reason about — replaying a
cookie or token after logout, planting a session id before login (fixation),
forging or replaying a token — run for real over HTTP through nginx. Each
says what the mode promises, what happened, and whether that is the promise
kept. A mode that cannot keep a promise (a signed cookie cannot be revoked)
predicts that too: the table shows it plainly rather than calling it a bug.
What a mode promises comes from its record in ``sessions_lab.modes`` (what
the client carries, whether logout revokes it, what a logout does while the
store is down), never from its name. Reading a stored session also asks
the lab's options: it is readable unless the lab encrypts sessions
(``--encrypt-sessions``), since a signature keeps a session from being
changed, not from being read.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sqlite3
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis
from pymemcache.client.base import Client as MemcachedClient

from sessions_lab.cluster.apps import database_url
from sessions_lab.cluster.config import LabConfig, RunFolder
from sessions_lab.mode_settings import SESSION_CACHE_KEY_PREFIX
from sessions_lab.modes import MODES, Credential, Mode, StoreServer, get_mode
from sessions_lab.shop_client import Client

PASSWORD = "demo-password"  # noqa: S105 - the lab's published demo password


@dataclass(frozen=True)
class Outcome:
    attack: str
    expected: str
    observed: str
    detail: str = ""  # what else was seen, shown but not compared

    @property
    def as_expected(self) -> bool:
        return self.expected == self.observed


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _identity(client: Client) -> str:
    status, body = client.call("GET", "/api/whoami/")
    if status == 401:
        return "refused (401)"
    if status == 200 and body and body.get("authenticated"):
        return "logged in"
    return "anonymous" if status == 200 else f"HTTP {status}"


def cookie_replay_after_logout(base: str, mode: str, user: str) -> Outcome:
    victim = Client(base, jwt=False)
    victim.log_in(user, PASSWORD, cart=False)
    stolen = victim.cookie("sessionid")
    victim.call("POST", "/api/session/logout/")
    thief = Client(base, jwt=False)
    thief.set_cookie("sessionid", stolen)
    expected = "anonymous" if get_mode(mode).logout_revokes_credential else "logged in"
    return Outcome("replay a session cookie after logout", expected, _identity(thief))


def session_fixation(base: str, mode: str, user: str) -> Outcome:
    attacker = Client(base, jwt=False)
    attacker.call("GET", "/api/whoami/")
    attacker.call("PUT", "/api/cart/items/1/", {"quantity": 1})  # now there is a session id
    planted = attacker.cookie("sessionid")
    victim = Client(base, jwt=False)
    victim.set_cookie("sessionid", planted)  # the id the attacker planted in the victim's browser
    victim.log_in(user, PASSWORD, cart=False)
    rotated = victim.cookie("sessionid") != planted
    attacker_view = _identity(attacker)
    observed = "rotated at login, planted id " + attacker_view if rotated else "not rotated"
    return Outcome(
        "plant a session id before login (fixation)",
        "rotated at login, planted id anonymous",
        observed,
    )


def tampered_cookie(base: str, mode: str, user: str) -> Outcome:
    client = Client(base, jwt=False)
    client.log_in(user, PASSWORD, cart=False)
    value = client.cookie("sessionid")
    client.set_cookie("sessionid", value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB"))
    return Outcome("tamper with the session cookie", "anonymous", _identity(client))


def access_token_after_logout(base: str, mode: str, user: str) -> Outcome:
    client = Client(base, jwt=True)
    client.log_in(user, PASSWORD, cart=False)
    access = client.access
    client.call("POST", "/api/token/logout/", {"refresh": client.refresh})
    thief = Client(base, jwt=True, access=access)
    payload = json.loads(base64.urlsafe_b64decode(access.split(".")[1] + "=="))
    left = max(0, int(payload["exp"] - time.time()))
    return Outcome(
        "replay an access token after logout",
        "logged in",
        _identity(thief),
        detail=f"until exp, {left // 60}:{left % 60:02d} from now",
    )


def blacklisted_refresh(base: str, mode: str, user: str) -> Outcome:
    client = Client(base, jwt=True)
    client.log_in(user, PASSWORD, cart=False)
    refresh = client.refresh
    client.call("POST", "/api/token/logout/", {"refresh": refresh})
    status, _ = client.call("POST", "/api/token/refresh/", {"refresh": refresh})
    return Outcome("replay a blacklisted refresh token", "refused (401)", _status(status))


def _status(status: int) -> str:
    return (
        "refused (401)"
        if status == 401
        else f"accepted ({status})"
        if status < 400
        else f"HTTP {status}"
    )


def forged_tokens(base: str, mode: str, user: str) -> list[Outcome]:
    client = Client(base, jwt=True)
    client.log_in(user, PASSWORD, cart=False)
    header, payload, signature = client.access.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged = {
        "alg:none token": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "token with a changed user id": f"{header}.{_b64({**claims, 'user_id': '1'})}.{signature}",
        "expired token (exp in the past)": f"{header}.{_b64({**claims, 'exp': int(time.time()) - 60})}.{signature}",
    }
    outcomes = []
    for name, token in forged.items():
        outcomes.append(
            Outcome(
                f"use a forged {name}",
                "refused (401)",
                _identity(Client(base, jwt=True, access=token)),
            )
        )
    return outcomes


# ------------------------------------------------------------ reading a stored session

READ_COOKIE = "read the cart out of the signed cookie"
READ_STORE = "read the cart out of the store"
READ_ATTACKS = (READ_COOKIE, READ_STORE)
READABLE, UNREADABLE, NOT_APPLICABLE = "readable", "unreadable", "not applicable"
READ_NOTE = (
    "Reading a stored session: a signature keeps a session from being changed, not from being "
    "read. Whoever holds the cookie, a Redis dump or a database backup reads the user id and "
    "the cart, unless the lab encrypts sessions (`up --encrypt-sessions`: Fernet)."
)
# How memcached names a session: the cache's prefix and version, then Django's
# cache engine's own prefix (django.contrib.sessions.backends.cache.KEY_PREFIX).
MEMCACHED_SESSION_KEY = f"{SESSION_CACHE_KEY_PREFIX}:1:django.contrib.sessions.cache"
ROW_SQL = "SELECT session_data FROM django_session WHERE session_key = %s"
FERNET_PREFIX = b"gAAAAA"  # how every Fernet token begins
STORE_TIMEOUT_S = 2
STORE_ERRORS = (OSError, redis.RedisError, sqlite3.Error, psycopg.Error)


def read_the_session(base: str, mode_name: str, user: str, run_dir: Path | None) -> Outcome:
    """Log a victim in with a cart, then read their session where the mode keeps it, as a
    thief holding the cookie or the store's data would: with no key, only base64 and zlib."""
    mode = get_mode(mode_name)
    attack = READ_COOKIE if mode.credential is Credential.SIGNED_SESSION else READ_STORE
    lab = _lab(run_dir)
    why_not = _nothing_to_read(mode, lab)
    if why_not:
        return Outcome(attack, NOT_APPLICABLE, NOT_APPLICABLE, detail=why_not)
    expected = UNREADABLE if lab is not None and lab[0].shop.encrypt_sessions else READABLE
    victim = Client(base, jwt=False)
    victim.log_in(user, PASSWORD)
    key = victim.cookie("sessionid")
    try:
        if lab is None or attack == READ_COOKIE:  # the cookie needs no run folder
            copies = {"the cookie": key.encode()}
        else:
            copies = stored_copies(mode, *lab, key)
    except STORE_ERRORS as error:
        return Outcome(attack, expected, "could not read the store", detail=str(error))
    observed, detail = what_was_read(copies)
    return Outcome(attack, expected, observed, detail=detail)


def _lab(run_dir: Path | None) -> tuple[LabConfig, RunFolder] | None:
    """The lab's configuration and run folder, if ``run_dir`` holds one."""
    run = RunFolder(run_dir) if run_dir is not None else None
    return (run.read_config(), run) if run is not None and run.config.exists() else None


def _nothing_to_read(mode: Mode, lab: tuple[LabConfig, RunFolder] | None) -> str:
    """Why there is no stored session to read in ``mode``; empty if there is one."""
    if mode.credential is Credential.JWT:
        return (
            "no session: the cart is database rows; and a JWT is signed, not encrypted: "
            "whoever holds one reads its claims (user id, expiry) by decoding base64"
        )
    if mode.credential is Credential.SIGNED_SESSION:
        return ""
    if mode.store_server is StoreServer.NONE:
        return "the session lives in one instance's memory: there is no store to read"
    if lab is None:
        return "no run folder to find the store in"
    return ""


def stored_copies(mode: Mode, config: LabConfig, run: RunFolder, key: str) -> dict[str, bytes]:
    """Every copy of session ``key`` the mode's store servers hold, raw, by where it was found."""
    found: dict[str, bytes | None] = {}
    host = config.listen_address
    if mode.store_server is StoreServer.REDIS:
        found["the Redis value"] = _redis_value(host, [config.redis_port], key)
    elif mode.store_server is StoreServer.REPLICATED:  # any server: each holds a copy
        ports = [config.primary_port, *config.replica_ports]
        found["the Valkey value"] = _redis_value(host, ports, key)
    elif mode.store_server is StoreServer.MEMCACHED:
        found["the memcached value"] = _memcached_value(host, config.memcached_ports, key)
    if mode.store_server is StoreServer.DATABASE or mode.backed_by_database:
        found["the django_session row"] = _row(config, run, key)
    return {where: raw for where, raw in found.items() if raw is not None}


def _redis_value(host: str, ports: list[int | None], key: str) -> bytes | None:
    """The value whose name ends with ``key``, from the first server that answers."""
    error: Exception | None = None
    for port in (port for port in ports if port is not None):
        client = redis.Redis(
            host, port, socket_timeout=STORE_TIMEOUT_S, socket_connect_timeout=STORE_TIMEOUT_S
        )
        try:
            names = list(client.scan_iter(match=f"*{key}"))
            return client.get(names[0]) if names else None
        except redis.ConnectionError as failed:  # a server killed by a scenario: the next
            error = failed
        finally:
            client.close()
    if error is not None:
        raise error
    return None


def _memcached_value(host: str, ports: list[int], key: str) -> bytes | None:
    for port in ports:  # the node it hashes to holds it: ask each rather than hash
        client = MemcachedClient(
            (host, port), connect_timeout=STORE_TIMEOUT_S, timeout=STORE_TIMEOUT_S
        )
        try:
            value = client.get(MEMCACHED_SESSION_KEY + key)
        finally:
            client.close()
        if value is not None:
            return value
    return None


def _row(config: LabConfig, run: RunFolder, key: str) -> bytes | None:
    if config.db == "postgres":
        url = database_url(config, run)
        with psycopg.connect(url, connect_timeout=STORE_TIMEOUT_S) as connection:
            row = connection.execute(ROW_SQL, (key,)).fetchone()
    else:
        with contextlib.closing(sqlite3.connect(run.sqlite, timeout=STORE_TIMEOUT_S)) as db:
            row = db.execute(ROW_SQL.replace("%s", "?"), (key,)).fetchone()
    return row[0].encode() if row else None


def what_was_read(copies: dict[str, bytes]) -> tuple[str, str]:
    """``readable`` and what a thief learnt, or ``unreadable`` and what the copies look like."""
    if not copies:
        return "nothing found", "no copy of the session where the mode keeps it"
    for where, raw in copies.items():
        session = readable_session(raw)
        if session is not None and "_auth_user_id" in session:
            cart = session.get("cart")
            lines = cart.get("lines") if isinstance(cart, dict) else None
            return READABLE, (
                f"{where}: user id {session['_auth_user_id']}, cart lines "
                f"{lines or 'none (not in the session)'}"
            )
    return UNREADABLE, "; ".join(f"{where}: {_looks_like(raw)}" for where, raw in copies.items())


def readable_session(raw: bytes) -> dict[str, Any] | None:
    """The session in ``raw`` as anyone can read it: plain JSON (a cache's value), or a
    signed value (a cookie, a row) whose payload is base64, then zlib if it begins with a dot."""
    for layer in (raw, signed_payload(raw)):
        try:
            session = json.loads(layer) if layer is not None else None
        except ValueError:
            continue
        if isinstance(session, dict):
            return session
    return None


def signed_payload(raw: bytes) -> bytes | None:
    """The payload of Django's ``payload:timestamp:signature``, decoded; None if it is not one."""
    payload = raw.split(b":", 1)[0]
    encoded = payload.removeprefix(b".")
    try:
        data = base64.urlsafe_b64decode(encoded + b"=" * (-len(encoded) % 4))
        return zlib.decompress(data) if payload.startswith(b".") else data
    except (ValueError, zlib.error):
        return None


def _looks_like(raw: bytes) -> str:
    layers = (raw, signed_payload(raw) or b"")
    if any(layer.startswith(FERNET_PREFIX) for layer in layers):
        return f"a Fernet token ({FERNET_PREFIX.decode()}…), {len(raw)} bytes"
    return f"{len(raw)} bytes that decode to no session"


SESSION_ATTACKS: list[Callable[[str, str, str], Outcome]] = [
    cookie_replay_after_logout,
    session_fixation,
    tampered_cookie,
]
JWT_ATTACKS: list[Callable[[str, str, str], Any]] = [
    access_token_after_logout,
    blacklisted_refresh,
    forged_tokens,
]


# Why a copied credential outlives logout, per kind of credential: a mode
# that cannot revoke one inherits the explanation from what it carries.
WHY_LOGOUT_CANNOT_REVOKE: dict[Credential, str] = {
    Credential.SIGNED_SESSION: "a signed cookie *is* the session, so a copy stays valid after "
    "logout until it expires — the price of keeping no server state (documented, not a bug).",
    Credential.JWT: "logout blacklists the refresh token, but an access token is checked by "
    "signature alone and works until its exp (5 minutes by default).",
}


# The replays above run with every server up; what a logout does while the
# mode's store is down is the registry's promise, shown under this heading.
LOGOUT_WHILE_STORE_DOWN = "A logout while the mode's store is down:"


def run_attacks(
    base: str, mode: str, user: str = "user1", run_dir: Path | None = None
) -> list[Outcome]:
    """Every attack on the lab at ``base``; ``run_dir``: its run folder, where reading a stored
    session finds the store's ports and whether the lab encrypts sessions."""
    outcomes: list[Outcome] = []
    carries_token = get_mode(mode).credential is Credential.JWT
    for attack in JWT_ATTACKS if carries_token else SESSION_ATTACKS:
        result = attack(base, mode, user)
        outcomes.extend(result if isinstance(result, list) else [result])
    outcomes.append(read_the_session(base, mode, user, run_dir))
    return outcomes


def table(results: dict[str, list[Outcome]]) -> str:
    lines = [
        "| mode | attack | the mode promises | observed | |",
        "|---|---|---|---|---|",
    ]
    for mode, outcomes in results.items():
        for outcome in outcomes:
            mark = "as promised" if outcome.as_expected else "NOT as promised"
            observed = outcome.observed + (f" ({outcome.detail})" if outcome.detail else "")
            lines.append(
                f"| {mode} | {outcome.attack} | {outcome.expected} | {observed} | {mark} |"
            )
    # One note per mode whose logout cannot revoke a copy, then what each
    # mode's logout does while its store is down, in the registry's order
    # whatever order the results came in.
    shown = [mode for name, mode in MODES.items() if name in results]
    notes = [
        f"{mode.name}: {WHY_LOGOUT_CANNOT_REVOKE[mode.credential]}"
        for mode in shown
        if not mode.logout_revokes_credential
    ]
    if any(o.attack in READ_ATTACKS for outcomes in results.values() for o in outcomes):
        notes.append(READ_NOTE)
    notes += [*([""] if notes else []), LOGOUT_WHILE_STORE_DOWN]
    notes += [f"{mode.name}: {mode.logout_while_store_down_text}." for mode in shown]
    return "\n".join([*lines, "", *notes]) + "\n"
