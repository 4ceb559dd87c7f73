"""What the session inspector footer (and ``/api/whoami/``) says about this request's session.

It names the place this mode keeps the session — the lesson of the whole
lab: Redis, a row, the memcached node its key hashes to — and its size, read from the mode's record (what the client carries,
which server holds the session, whether the database backs it) rather than
its name; and what a logout does while that server is down, in the
registry's own words, so a user who cannot log out knows why. Session keys are shown shortened: the full key is a credential and
does not belong in a page.

``stored_as`` shows the session as its store holds it — the Redis or
memcached value, the ``django_session`` row's data, the cookie — so a
student sees plain JSON, or a signed value whose payload decodes to JSON
with no key at all (signed is not secret), and with
``SESSION_ENCRYPTION_KEYS`` a Fernet token (``gAAAAA…``) in its place. It
is the engine's own encoding of the session as this request leaves it, so
the form and the size are the store's; the ciphertext differs from the
stored copy's byte for byte, as every encryption draws a fresh IV. Only a
prefix is shown, and of a signed value only its payload: the signature at
its end is what makes a cookie a credential.
"""

from __future__ import annotations

import time
import zlib
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.cache import caches
from django.http import HttpRequest

from sessions_lab.modes import Credential, StoreServer, get_mode
from shop.session_node import node_of
from shop.sessions.encryption import encryption_on

PREVIEW_CHARACTERS = 48


def _short(key: str | None) -> str:
    return f"{key[:8]}…" if key else ""


def _prefix(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARACTERS else f"{text[:PREVIEW_CHARACTERS]}…"


def stored_as(stored: str | bytes, signed: bool) -> dict[str, Any]:
    """A prefix of ``stored`` as its store holds it; of a ``signed`` value (Django's
    ``payload:timestamp:signature``) the payload only, and what it decodes to without a key."""
    text = stored if isinstance(stored, str) else stored.decode("latin-1")
    shown = text.split(":", 1)[0] if signed else text
    described: dict[str, Any] = {"preview": _prefix(shown), "encrypted": encryption_on()}
    if signed:
        described["decoded"] = _prefix(decoded_payload(shown).decode("latin-1"))
    return described


def decoded_payload(payload: str) -> bytes:
    """The start of a signed payload as anyone reads it: base64, then zlib where it begins with
    a dot. No key is needed: a signature keeps a value from being changed, not from being read."""
    data = signing.b64_decode(payload.removeprefix(".").encode())
    if not payload.startswith("."):
        return data[: PREVIEW_CHARACTERS + 1]
    try:
        return zlib.decompressobj().decompress(data, PREVIEW_CHARACTERS + 1)
    except zlib.error:
        return b""


def describe_session(request: HttpRequest, bearer: Any = None) -> dict[str, Any]:
    """Where this request's session lives and how big it is; ``bearer``: a token from the header."""
    mode = get_mode(settings.SESSION_MODE)
    info: dict[str, Any] = {"store": mode.store, "bytes": 0, "stored_as": None}
    if mode.credential is Credential.JWT:
        token, carrier = bearer, "Authorization header"
        if token is None:
            bool(request.user.is_authenticated)  # resolves the lazy user, which reads the cookie
            token, carrier = getattr(request, "jwt", {}).get("access"), "cookie"
        if token is None:
            info["text"] = "no token: log in to get one"
            return info
        size = len(token.token)
        expires_in = max(0, int(token["exp"] - time.time()))
        info.update(
            bytes=size,
            expires_in=expires_in,
            text=f"JWT in the {carrier}, {size} bytes, expires in "
            f"{expires_in // 60}:{expires_in % 60:02d}",
        )
        return info

    session = request.session
    data = dict(session.items())
    key = session.session_key
    if mode.credential is Credential.SIGNED_SESSION:
        value = session._get_session_key() if data else ""  # the cookie's value, as it will be sent
        info.update(
            bytes=len(value), text=f"cookie, {len(value)} bytes" if value else "no cookie yet"
        )
        if value:
            info["stored_as"] = stored_as(value, signed=True)
        return info
    # A row holds the session encoded (signed); a cache or Valkey the serializer's bytes.
    in_a_row = mode.store_server is StoreServer.DATABASE
    encoded = (
        "" if not data else session.encode(data) if in_a_row else session.serializer().dumps(data)
    )
    info.update(bytes=len(encoded), key=_short(key))
    if encoded:
        info["stored_as"] = stored_as(encoded, signed=in_a_row)
    if not key:
        info["text"] = "no session yet (nothing stored)"
    elif mode.store_server is StoreServer.DATABASE:
        info["text"] = f"row in django_session, key {_short(key)}, {len(encoded)} bytes"
    elif mode.store_server is StoreServer.REPLICATED:
        replication = settings.SESSION_REPLICATION
        info["replication"] = "sync" if replication["SYNC"] else "async"
        waits = (
            f"each save waits for a replica (WAIT 1 {replication['WAIT_MS']} ms)"
            if replication["SYNC"]
            else "saves do not wait for a replica (async)"
        )
        reads = (
            f"read from {settings.INSTANCE_NAME}'s replica"
            if replication["REPLICA_URL"]
            else "read from the primary"
        )
        info["text"] = (
            f"Valkey key, key {_short(key)}, {len(encoded)} bytes: {reads}, written to the "
            f"primary; {waits}"
        )
    else:
        # A cache key: in Redis, on the memcached node it hashes to, or, with no
        # store server, in this instance's memory.
        full_key = caches[settings.SESSION_CACHE_ALIAS].make_key(session.cache_key_prefix + key)
        shown_key = full_key[: len(full_key) - len(key)] + _short(key)
        if mode.store_server is StoreServer.REDIS:
            where = "Redis key"
        elif mode.store_server is StoreServer.MEMCACHED:
            info["node"] = node_of(session)
            where = f"memcached node {info['node']}, key" if info["node"] else "memcached key"
        else:
            where = f"local memory of {settings.INSTANCE_NAME}, key"
        info["text"] = f"{where} {shown_key}, {len(encoded)} bytes"
        if mode.backed_by_database:
            info["text"] += " (and a row in django_session)"
    return info


def inspector(request: HttpRequest) -> dict[str, Any]:
    """Everything the footer shows."""
    user = request.user
    mode = get_mode(settings.SESSION_MODE)
    return {
        "mode": settings.SESSION_MODE,
        "mode_summary": mode.summary,
        "logout_while_store_down": mode.logout_while_store_down_text,
        "instance": settings.INSTANCE_NAME,
        "authenticated": user.is_authenticated,
        "username": user.get_username() if user.is_authenticated else "",
        "session": describe_session(request),
        "cookie_secure": settings.COOKIE_SECURE,
        "dashboard_url": settings.LAB_DASHBOARD_URL,
    }
