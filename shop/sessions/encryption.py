"""Sessions encrypted at rest: the one session serializer every engine of the shop writes with.

Signed is not secret. Django signs a session it hands to a client or a
row, so nobody can change it, but anyone who holds the bytes (a copied
cookie, a Redis dump, a database backup) reads the user id and the cart by
undoing base64 and zlib. With ``SESSION_ENCRYPTION_KEYS`` set, this
serializer (``SESSION_SERIALIZER``) encrypts the session's JSON with
Fernet (AES-128-CBC and HMAC-SHA256) before any store or cookie sees it.
Every engine of the shop goes through it: the signed cookie and the
database row through Django's ``signing``, the caches (Redis, memcached,
local memory) through ``shop.sessions.cache.SerializedSessions``, the
replicated Valkey directly. Without keys it is Django's JSON serializer,
byte for byte.

The keys are Fernet keys, newest first (``MultiFernet``): sessions are
written under the first and read under any. A session read under an older
key is written again under the first on that same request
(``KeyRotationMiddleware``), so putting a new key first rotates every
session whose user comes back; once the sessions older than
``SESSION_COOKIE_AGE`` are gone, the old key can go.

A session the keys cannot read is no session: the user is treated as
logged out, never served a 500, and one warning says why (``Unreadable``).
That includes a session stored in clear while keys are set: accepting it
would keep serving copies written before encryption was turned on, readable
in the store until they expire, so turning encryption on logs everybody
out once instead.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse

from shop.sessions.errors import UNREACHABLE

logger = logging.getLogger("shop.sessions")

SETTING = "SESSION_ENCRYPTION_KEYS"
# How every Fernet token begins: its version byte (0x80) and the high bytes,
# still zero, of its timestamp, in URL-safe base64.
FERNET_PREFIX = b"gAAAAA"
PLAIN = signing.JSONSerializer()  # Django's session JSON, compact


class Unreadable(StrEnum):
    """Why a stored session cannot be read: the warning the log gives."""

    UNKNOWN_KEY = f"encrypted under a key not in {SETTING} (or altered)"
    NO_KEYS = f"encrypted but {SETTING} is not set"
    PLAIN_WITH_KEYS = f"not encrypted, but {SETTING} is set: sessions in clear are refused"


class UnreadableSession(ValueError):
    """A stored session this process cannot read. A ValueError, which every engine (and
    Django's ``SessionBase.decode``) reads as "no session"."""


# ------------------------------------------------------------------ keys


@dataclass(frozen=True)
class Keyring:
    """The Fernet keys, newest first: writes use the first, reads try each."""

    newest: Fernet
    older: MultiFernet | None

    def encrypt(self, data: bytes) -> bytes:
        return self.newest.encrypt(data)

    def decrypt(self, token: bytes) -> tuple[bytes, bool]:
        """The plain bytes, and whether an older key (not the newest) opened them."""
        try:
            return self.newest.decrypt(token), False
        except InvalidToken:
            if self.older is None:
                raise
            return self.older.decrypt(token), True


@functools.cache
def keyring(keys: tuple[str, ...]) -> Keyring | None:
    """The keys as Fernets, built once per process and key list; None: encryption is off.

    ``ImproperlyConfigured`` names the key that is no Fernet key, by its place, never its value.
    """
    fernets = []
    for place, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except (TypeError, ValueError):  # not URL-safe base64 of 32 bytes
            raise ImproperlyConfigured(
                f"{SETTING}: key {place} of {len(keys)} is not a Fernet key (32 random bytes, "
                "URL-safe base64; make one with `python -c 'from cryptography.fernet import "
                "Fernet; print(Fernet.generate_key().decode())'`)."
            ) from None
    if not fernets:
        return None
    newest, *older = fernets
    return Keyring(newest, MultiFernet(older) if older else None)


def current_keyring() -> Keyring | None:
    return keyring(tuple(settings.SESSION_ENCRYPTION_KEYS))


def check_keys() -> None:
    """At start-up: malformed keys stop the instance (``ImproperlyConfigured``), not a request."""
    current_keyring()


def encryption_on() -> bool:
    return current_keyring() is not None


# ------------------------------------------------------------------ what a request read

# Sessions read under an older key in this context: a counter, so any code can
# tell whether the reads it made used one (before and after). Never reset.
_OLDER_KEY_READS: ContextVar[int] = ContextVar("older_key_reads", default=0)
# The reasons already logged during this request (None outside one): a session
# whose two copies are unreadable (cached_db's Redis copy and row) warns once.
_WARNED: ContextVar[set[Unreadable] | None] = ContextVar("unreadable_warned", default=None)


def older_key_reads() -> int:
    """How many sessions this context has read under an older key so far."""
    return _OLDER_KEY_READS.get()


def unreadable(reason: Unreadable) -> UnreadableSession:
    """The error for an unreadable session, its warning logged (once per request and reason)."""
    warned = _WARNED.get()
    if warned is None or reason not in warned:
        logger.warning("session unreadable, treated as logged out: %s", reason.value)
        if warned is not None:
            warned.add(reason)
    return UnreadableSession(reason.value)


# ------------------------------------------------------------------ the serializer


class SessionSerializer:
    """Django's session serializer interface: ``dumps(dict) -> bytes``, ``loads(bytes) -> dict``."""

    def dumps(self, obj: Any) -> bytes:
        data = PLAIN.dumps(obj)
        keys = current_keyring()
        return data if keys is None else keys.encrypt(data)

    def loads(self, data: bytes) -> Any:
        keys = current_keyring()
        encrypted = data.startswith(FERNET_PREFIX)
        if keys is None:
            if encrypted:
                raise unreadable(Unreadable.NO_KEYS)
            return PLAIN.loads(data)
        if not encrypted:
            raise unreadable(Unreadable.PLAIN_WITH_KEYS)
        try:
            plain, older_key = keys.decrypt(data)
        except InvalidToken:
            raise unreadable(Unreadable.UNKNOWN_KEY) from None
        if older_key:
            _OLDER_KEY_READS.set(_OLDER_KEY_READS.get() + 1)
        return PLAIN.loads(plain)


# ------------------------------------------------------------------ rotation


@contextmanager
def _warnings_of_one_request() -> Iterator[None]:
    """Within it, each reason an unreadable session is logged at most once."""
    token = _WARNED.set(set())
    try:
        yield
    finally:
        _WARNED.reset(token)


class KeyRotationMiddleware:
    """Rewrites under the newest key a session this request read under an older one.

    Placed just inside Django's ``SessionMiddleware``: the view has read the
    session (or not) by the time the answer passes here, and marking it
    changed makes ``SessionMiddleware`` save it, encrypted under the first
    key, with its cookie. An empty session (logged out meanwhile) is not
    saved, as always.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with _warnings_of_one_request():
            before = older_key_reads()
            response = self.get_response(request)
            if older_key_reads() > before:
                rewrite_under_newest_key(request.session)
        return response


def rewrite_under_newest_key(session: SessionBase) -> None:
    try:
        session.modified = True
    except UNREACHABLE:
        # cached_db refuses a change it cannot first clear from Redis: read as
        # it is, and rotated by a later request once Redis answers.
        logger.warning("session read under an older key is not rewritten now: its store refused")
