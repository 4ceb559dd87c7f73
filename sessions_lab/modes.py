"""The session modes: one small record per strategy, chosen by ``SESSION_MODE``.

Like ``django.contrib.sessions.backends``, every mode answers the same
questions (where the session lives, what the client carries, what survives
which failure, how the load balancer must route, what Django settings that
takes); ``settings.py`` applies exactly one of them, and the contract tests
apply each in turn. The rest of the lab and the shop read those answers and
never compare a mode's name: adding a mode is one record here, its engine or
store module, and its templates. Nothing here imports Django models, so the
lab (CLI, cluster) can read the registry without configuring Django.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sessions_lab.mode_settings import (
    JWT_AUTHENTICATION,
    MIDDLEWARE_HEAD,
    MIDDLEWARE_JWT,
    MIDDLEWARE_SESSION,
    MIDDLEWARE_TAIL,
    REPLICATION_CHOICES,
    REST_FRAMEWORK_BASE,
    SENTINEL_SERVICE,
    SESSION_AUTHENTICATION,
    SESSION_CACHE_KEY_PREFIX,
    WAIT_MS,
    locmem_cache,
    memcached_nodes,
    redis_in_front_of_db,
    redis_session_store,
    replication,
)

__all__ = [  # the registry, and what its records name (sessions_lab/mode_settings.py)
    "MODES",
    "MODE_NAMES",
    "REPLICATION_CHOICES",
    "SENTINEL_SERVICE",
    "SESSION_CACHE_KEY_PREFIX",
    "WAIT_MS",
    "Credential",
    "LoadBalancing",
    "Mode",
    "OutageLogout",
    "StoreServer",
    "UnknownModeError",
    "get_mode",
]


class LoadBalancing(StrEnum):
    """How nginx must spread requests for a mode to keep its promises."""

    AFFINITY = "affinity"  # the session lives in one instance: pin each client to it
    ROUND_ROBIN = "round_robin"  # any instance can answer any request


class StoreServer(StrEnum):
    """The separate server a mode's state lives on: the one a lab can kill to test it."""

    NONE = "none"  # in an instance's memory, or with the client: no server to lose
    REDIS = "redis"
    # The shop's database: a separate server only with PostgreSQL (SQLite is
    # a file each instance opens), so the lab restarts it only with --db postgres.
    DATABASE = "database"
    # One memcached per app instance (memcached1..N); every instance hashes each
    # session key to one of them (client-side sharding): a node's death loses
    # exactly the sessions hashed to it.
    MEMCACHED = "memcached"
    # One Valkey primary, one replica per app instance (its reads) and three
    # Sentinels that promote a replica when the primary dies (its writes).
    REPLICATED = "replicated"


class OutageLogout(StrEnum):
    """What a logout does while the server holding the session cannot be reached."""

    # The session lives in an instance's memory or in the cookie: there is no
    # store server to be down, so a logout never waits on one.
    NO_STORE_SERVER = "no store server"
    # The logout fails loudly and changes nothing: the user stays logged in,
    # is told so, and may retry. Never "logged out" with a copy left behind
    # to be served again when the store returns.
    REFUSED = "refused"
    # Client-side sharding: a node that cannot be reached is skipped, so the
    # session is simply not found (the user is already logged out) and a
    # logout answers "logged out" at once. A node that was only paused still
    # holds the old copy, served again to whoever kept the cookie once it resumes.
    COPY_SURVIVES = "copy survives"


class Credential(StrEnum):
    """What the client carries from request to request, which is what a thief would copy."""

    SESSION_ID = "session id"  # a random key to a session the server keeps
    SIGNED_SESSION = "signed session"  # the whole session, signed, in the cookie itself
    JWT = "json web token"  # names the user, signed; checked by signature alone


@dataclass(frozen=True, kw_only=True)
class Mode:
    """One session strategy: where the session lives, what survives which failure, what it takes.

    The behaviour fields have no defaults: a new mode must answer every
    question explicitly rather than inherit a promise it may not keep.
    """

    name: str
    summary: str  # the one-line trade-off
    store: str  # where the session lives, as the inspector says it
    load_balancing: LoadBalancing
    session_engine: str | None  # None: no server session at all (jwt)
    credential: Credential
    """What the client sends with each request (the inspector describes it, ``attack`` copies it)."""
    store_server: StoreServer
    """The separate server the state lives on, if any: what ``store-restart`` kills.

    ``cached_db`` names Redis, the server it reads first; its database copy is
    ``backed_by_database``. ``jwt`` names the database: the cart lives there.
    """
    backed_by_database: bool
    """Every session is also a row in the database behind ``store_server``.

    So the store server may come back empty (Redis without persistence) and
    nobody loses a session: the next read refills it from the row. True only
    where the store is a cache in front of the database (``cached_db``).
    """
    keeps_sessions_on_instance_death: bool
    """No user loses a session when an app instance dies (or hangs, or is replaced).

    False where the session lives in one instance's memory: its death takes
    the sessions of everyone pinned to it, and a client moved to another
    instance arrives as a stranger.
    """
    logout_revokes_credential: bool
    """After logout, a copy of the credential taken before it is worthless at once.

    False where the credential carries its own proof (a signed cookie, an
    access token): nothing on the server can recall it before it expires.
    """
    logout_while_store_down: OutageLogout
    """What a logout does while ``store_server`` cannot be reached (down, paused, partitioned).

    ``REFUSED``: a 5xx that says so — 503 with Retry-After where the store is
    Redis (``shop.views.server_error``), Django's 500 where it is the
    database — and the session is unchanged, still logged in. ``cached_db``
    keeps it only because its engine clears Redis before the row: Django's
    own engine, ignoring Redis errors, answers "logged out" and serves the
    copy again when Redis returns.
    """
    session_cache: Callable[[Mapping[str, str]], dict[str, Any]] | None = None
    # Further settings of the engine, from the environment (replicated: its servers).
    engine_settings: Callable[[Mapping[str, str]], dict[str, Any]] | None = None

    def settings(self, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The Django settings fragment this mode needs."""
        env = os.environ if env is None else env
        middle, authentication = (
            (MIDDLEWARE_JWT, JWT_AUTHENTICATION)
            if self.is_jwt
            else (MIDDLEWARE_SESSION, SESSION_AUTHENTICATION)
        )
        fragment: dict[str, Any] = {
            "SESSION_MODE": self.name,
            "MIDDLEWARE": [*MIDDLEWARE_HEAD, *middle, *MIDDLEWARE_TAIL],
            "REST_FRAMEWORK": {
                **REST_FRAMEWORK_BASE,
                "DEFAULT_AUTHENTICATION_CLASSES": authentication,
            },
        }
        if self.session_engine is not None:
            fragment["SESSION_ENGINE"] = self.session_engine
        caches: dict[str, Any] = {
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
        }
        if self.session_cache is not None:
            caches["sessions"] = self.session_cache(env)
            fragment["SESSION_CACHE_ALIAS"] = "sessions"
        fragment["CACHES"] = caches
        if self.engine_settings is not None:
            fragment.update(self.engine_settings(env))
        return fragment

    @property
    def is_jwt(self) -> bool:
        """No server session: identity rides in a token (the JWT middleware and API classes)."""
        return self.session_engine is None

    @property
    def saves_cart_whole(self) -> bool:
        """A logged-in cart is one value of the session, loaded and saved whole with it.

        So of two requests changing it at once, the last to save wins and the
        other's change is lost. False in ``jwt`` mode, whose cart is database
        rows per line (as in every mode with ``CART_STORE=rows``).
        """
        return self.session_engine is not None

    @property
    def logout_while_store_down_text(self) -> str:
        """``logout_while_store_down`` in a few words: the README's table, the inspector, ``attack``."""
        if self.logout_while_store_down is OutageLogout.COPY_SURVIVES:
            return "the node's sessions are not found: logged out at once; a paused node's copy returns with it"
        if self.logout_while_store_down is OutageLogout.NO_STORE_SERVER:
            ending = (
                "logout always ends the session"
                if self.logout_revokes_credential
                else "logout clears the cookie, a copy stays valid"
            )
            return f"no store server: {ending}"
        if self.store_server is StoreServer.REPLICATED:
            return "refused (503) until the Sentinels name a primary: still logged in"
        server, status = (
            ("Redis", 503) if self.store_server is StoreServer.REDIS else ("the database", 500)
        )
        return f"refused ({status}) until {server} is back: still logged in"

    @property
    def uses_redis(self) -> bool:
        """The lab must run Redis for this mode."""
        return self.store_server is StoreServer.REDIS

    @property
    def uses_replication(self) -> bool:
        """The lab must run a Valkey primary, a replica per instance and three Sentinels."""
        return self.store_server is StoreServer.REPLICATED

    @property
    def uses_memcached(self) -> bool:
        """The lab must run one memcached per app instance for this mode."""
        return self.store_server is StoreServer.MEMCACHED


MODES: dict[str, Mode] = {
    mode.name: mode
    for mode in (
        Mode(
            name="sticky",
            summary="Fastest; an instance's death logs out everyone pinned to it.",
            store="local memory of one instance",
            load_balancing=LoadBalancing.AFFINITY,
            # Django's cache engine, storing the session serializer's bytes:
            # see shop/sessions/cache.py.
            session_engine="shop.sessions.cache",
            session_cache=locmem_cache,
            credential=Credential.SESSION_ID,
            store_server=StoreServer.NONE,
            backed_by_database=False,
            keeps_sessions_on_instance_death=False,
            logout_revokes_credential=True,
            logout_while_store_down=OutageLogout.NO_STORE_SERVER,
        ),
        Mode(
            name="redis",
            summary="Any instance serves anyone; Redis is now the single point of failure.",
            store="Redis",
            load_balancing=LoadBalancing.ROUND_ROBIN,
            # Django's cache engine, except that an unreachable Redis is an
            # error rather than an empty session: see shop/sessions/cache.py.
            session_engine="shop.sessions.cache",
            session_cache=redis_session_store,
            credential=Credential.SESSION_ID,
            store_server=StoreServer.REDIS,
            # Redis holds the only copy: it keeps sessions across a restart
            # only with persistence (--redis-persistence aof).
            backed_by_database=False,
            keeps_sessions_on_instance_death=True,
            logout_revokes_credential=True,
            # Loading the session fails first: nothing is deleted (shop/sessions/cache.py).
            logout_while_store_down=OutageLogout.REFUSED,
        ),
        Mode(
            name="db",
            summary="Durable and simple; every session write is a database commit.",
            store="a row in django_session",
            load_balancing=LoadBalancing.ROUND_ROBIN,
            # Django's database engine, reading its row with one plain query:
            # see shop/sessions/db.py.
            session_engine="shop.sessions.db",
            credential=Credential.SESSION_ID,
            store_server=StoreServer.DATABASE,
            backed_by_database=False,  # the database is the store itself
            keeps_sessions_on_instance_death=True,
            logout_revokes_credential=True,
            # The row cannot be read or deleted: the request fails with the database.
            logout_while_store_down=OutageLogout.REFUSED,
        ),
        Mode(
            name="cached_db",
            summary="Reads from Redis, writes through to the database: survives either restart.",
            store="Redis, written through to a row in django_session",
            load_balancing=LoadBalancing.ROUND_ROBIN,
            # Django's cached_db engine, except that a change it cannot first
            # clear from Redis is refused: see shop/sessions/cached_db.py.
            session_engine="shop.sessions.cached_db",
            session_cache=redis_in_front_of_db,
            credential=Credential.SESSION_ID,
            store_server=StoreServer.REDIS,
            backed_by_database=True,
            keeps_sessions_on_instance_death=True,
            logout_revokes_credential=True,
            # Redis's copy is deleted first, or the logout refused (shop/sessions/cached_db.py).
            logout_while_store_down=OutageLogout.REFUSED,
        ),
        Mode(
            name="cookie",
            summary="No server state; logout cannot revoke a copied cookie, 4 KB ceiling.",
            store="a signed cookie in the browser",
            load_balancing=LoadBalancing.ROUND_ROBIN,
            session_engine="shop.sessions.cookie",
            credential=Credential.SIGNED_SESSION,
            store_server=StoreServer.NONE,
            backed_by_database=False,
            keeps_sessions_on_instance_death=True,
            # Logout clears the browser's cookie, but a copy stays valid until
            # it expires: the price of keeping no server state.
            logout_revokes_credential=False,
            logout_while_store_down=OutageLogout.NO_STORE_SERVER,
        ),
        Mode(
            name="jwt",
            summary="Identity in a signed token, cart in the database; logout cannot recall "
            "an access token before it expires.",
            store="a JWT (identity) and cart rows in the database",
            load_balancing=LoadBalancing.ROUND_ROBIN,
            session_engine=None,
            credential=Credential.JWT,
            # The token needs no server, but the cart lives in database rows:
            # restarting PostgreSQL is this mode's store restart.
            store_server=StoreServer.DATABASE,
            backed_by_database=False,
            keeps_sessions_on_instance_death=True,
            # Logout blacklists the refresh token; an access token is checked
            # by signature alone and works until its exp.
            logout_revokes_credential=False,
            # Blacklisting the refresh token needs the database.
            logout_while_store_down=OutageLogout.REFUSED,
        ),
        Mode(
            name="memcached",
            summary="Sessions sharded over one memcached per instance; a node's death loses "
            "exactly the sessions hashed to it.",
            store="the memcached node its key hashes to (one node per instance)",
            load_balancing=LoadBalancing.ROUND_ROBIN,
            # Django's cache engine, storing the session serializer's bytes:
            # see shop/sessions/cache.py.
            session_engine="shop.sessions.cache",
            session_cache=memcached_nodes,
            credential=Credential.SESSION_ID,
            store_server=StoreServer.MEMCACHED,
            # No replication, no persistence: a node that restarts comes back empty.
            backed_by_database=False,
            keeps_sessions_on_instance_death=True,
            logout_revokes_credential=True,
            logout_while_store_down=OutageLogout.COPY_SURVIVES,
        ),
        Mode(
            name="replicated",
            summary="Every instance reads its own replica; when the primary dies, writes "
            "fail until Sentinel promotes one (async may lose the last).",
            store="a Valkey primary, copied to each instance's own replica",
            load_balancing=LoadBalancing.ROUND_ROBIN,
            # Reads the instance's replica, writes the primary Sentinel names:
            # see shop/sessions/replicated.py.
            session_engine="shop.sessions.replicated",
            engine_settings=replication,
            credential=Credential.SESSION_ID,
            store_server=StoreServer.REPLICATED,
            # No persistence: the replicas are the copies. A restarted primary
            # rejoins as a replica of the one Sentinel promoted.
            backed_by_database=False,
            keeps_sessions_on_instance_death=True,
            # Once the replicas have the delete: a loopback hop here. A replica cut off
            # from its primary serves its last copy until the link is back.
            logout_revokes_credential=True,
            # The delete needs the primary: while none is known, refused (503).
            logout_while_store_down=OutageLogout.REFUSED,
        ),
    )
}

MODE_NAMES: tuple[str, ...] = tuple(MODES)


class UnknownModeError(ValueError):
    """Raised for a ``SESSION_MODE`` that is not in the registry."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown SESSION_MODE {name!r}. Valid modes: {', '.join(MODE_NAMES)}.")


def get_mode(name: str) -> Mode:
    """The registry record for ``name``; raises ``UnknownModeError`` naming the valid modes."""
    try:
        return MODES[name]
    except KeyError:
        raise UnknownModeError(name) from None
