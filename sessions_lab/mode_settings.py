"""What each mode asks of Django: middleware, REST framework, and its store's settings.

The settings half of the mode registry (``sessions_lab.modes``): the
fragments a ``Mode`` record names, each built from the environment an
instance starts with (where its Redis, its memcached nodes, its Sentinels
are). Nothing here imports Django.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The middleware stack differs only in how a request is tied to a user:
# session-backed modes load ``request.session``; ``jwt`` has no server session
# and reads the token from a cookie (pages) or the Authorization header (API).
MIDDLEWARE_HEAD = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "shop.middleware.InstanceHeadersMiddleware",
    "django.middleware.common.CommonMiddleware",
]
MIDDLEWARE_SESSION = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Inside it, so a session read under an older encryption key is marked
    # changed before SessionMiddleware decides whether to save it.
    "shop.sessions.encryption.KeyRotationMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # --session-absolute and --session-idle (shop/timeouts.py): each removes
    # itself at start-up while its limit is unset, so costs nothing then.
    "shop.timeouts.AbsoluteTimeoutMiddleware",
    "shop.timeouts.IdleTimeoutMiddleware",
]
MIDDLEWARE_JWT = [
    "django.middleware.csrf.CsrfViewMiddleware",
    "shop.jwt_cookies.JWTCookieMiddleware",
]
MIDDLEWARE_TAIL = [
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

REST_FRAMEWORK_BASE: dict[str, Any] = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_SCHEMA_CLASS": "shop.api.schema.ShopSchema",  # per mode: see there
    "EXCEPTION_HANDLER": "shop.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SESSION_AUTHENTICATION = ["shop.api.authentication.SessionAuthentication"]
JWT_AUTHENTICATION = [
    "shop.api.authentication.BearerAuthentication",
    "shop.api.authentication.JWTCookieAuthentication",
]

# The cache key prefix is shared by every instance of a deployment, so a
# session written by app1 is found by app2 (``redis``, ``cached_db``).
SESSION_CACHE_KEY_PREFIX = "sessions-lab"


def redis_cache(env: Mapping[str, str]) -> dict[str, Any]:
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": env.get("REDIS_URL", "redis://127.0.0.1:6380/0"),
        "KEY_PREFIX": SESSION_CACHE_KEY_PREFIX,
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            # A session as the session serializer wrote it (JSON, or a Fernet
            # token), not pickled: what `redis-cli GET` shows is what is stored.
            "SERIALIZER": "shop.sessions.cache.KeptAsBytes",
            # A dead Redis must show up quickly, not hang each request.
            "SOCKET_CONNECT_TIMEOUT": 1,
            "SOCKET_TIMEOUT": 1,
            # Errors reach the engine, which decides per operation: see
            # redis_session_store and redis_in_front_of_db.
            "IGNORE_EXCEPTIONS": False,
        },
    }


def redis_session_store(env: Mapping[str, str]) -> dict[str, Any]:
    # Redis holds the only copy: while it is down, requests fail loudly (5xx)
    # rather than pretend every visitor is a stranger.
    return redis_cache(env)


def redis_in_front_of_db(env: Mapping[str, str]) -> dict[str, Any]:
    # The database holds the truth and Redis a copy. Errors are not ignored
    # here (Django's engine relies on IGNORE_EXCEPTIONS to carry on): the
    # engine reads the row when Redis cannot answer, and refuses a change it
    # cannot first clear from Redis, as a silently failed DELETE is a logout
    # whose copy is served again when Redis returns (shop/sessions/cached_db.py).
    return redis_cache(env)


def memcached_nodes(env: Mapping[str, str]) -> dict[str, Any]:
    # Every instance lists every node in the same order, so pymemcache's
    # HashClient (rendezvous hashing) puts a session key on the same node
    # whichever instance asks. A node that fails is retried once after 1 s,
    # then skipped (its keys hash to the others) and tried again after 5 s:
    # a restarted node rejoins, empty, within seconds.
    servers = env.get("MEMCACHED_SERVERS", "127.0.0.1:11211")
    return {
        # Django's PyMemcacheCache, its connections kept between requests.
        "BACKEND": "shop.sessions.cache.KeptOpenPyMemcacheCache",
        "LOCATION": [server.strip() for server in servers.split(",") if server.strip()],
        "KEY_PREFIX": SESSION_CACHE_KEY_PREFIX,
        "OPTIONS": {
            "connect_timeout": 0.5,
            "timeout": 0.5,
            "retry_attempts": 1,
            "retry_timeout": 1,
            "dead_timeout": 5,
            "use_pooling": True,
        },
    }


# --cart-store: where a logged-in user's cart lives. "session": in the session,
# as one value saved whole (the last save of two concurrent requests wins);
# "rows": one database row per cart line in every mode, as jwt mode always
# keeps it (two requests changing different lines both keep their change).
CART_STORES = ("session", "rows")
SENTINEL_SERVICE = "sessions"  # the name the Sentinels monitor the primary under
REPLICATION_CHOICES = ("async", "sync")
WAIT_MS = 1000  # --replication sync: how long a save waits for a replica's acknowledgement


def replication(env: Mapping[str, str]) -> dict[str, Any]:
    # Reads from the instance's own replica; writes to the primary that the
    # Sentinels name (redis-py's Sentinel client: no home-made discovery).
    # ``sync`` makes each save wait (WAIT 1) for one replica's acknowledgement.
    sentinels = env.get("REDIS_SENTINELS", "127.0.0.1:26381")
    replication = env.get("SESSION_REPLICATION", "async")
    if replication not in REPLICATION_CHOICES:
        raise ValueError(
            f"SESSION_REPLICATION={replication!r}: choose one of {', '.join(REPLICATION_CHOICES)}."
        )
    return {
        "SESSION_REPLICATION": {
            "SENTINELS": [
                (host, int(port))
                for host, _, port in (s.strip().rpartition(":") for s in sentinels.split(","))
                if host
            ],
            "SERVICE": env.get("REDIS_SENTINEL_SERVICE", SENTINEL_SERVICE),
            "REPLICA_URL": env.get("REDIS_REPLICA_URL", "redis://127.0.0.1:6391/0"),
            "SYNC": replication == "sync",
            "WAIT_MS": WAIT_MS,
            "KEY_PREFIX": SESSION_CACHE_KEY_PREFIX,
            # A dead server must show up quickly, not hang each request.
            "SOCKET_TIMEOUT": 1,
        }
    }


def locmem_cache(env: Mapping[str, str]) -> dict[str, Any]:
    # Per process: one gunicorn worker per instance in this mode (threads for
    # concurrency), or each worker would have sessions of its own.
    return {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "sessions",
        "OPTIONS": {"MAX_ENTRIES": 100_000},
    }
