"""Settings for the shop: one file, read top to bottom, ending with the session mode.

Everything a deployment varies comes from the environment, so every instance
of one lab (native or docker-compose) runs this same file with different
``INSTANCE_NAME`` values. https://docs.djangoproject.com/en/5.2/ref/settings/
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from sessions_lab.mode_settings import CART_STORES
from sessions_lab.modes import get_mode
from sessions_lab.timeout_settings import timeout_settings

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


# ------------------------------------------------------------------ core
DEBUG = env_bool("DEBUG", False)
INSTANCE_NAME = os.environ.get("INSTANCE_NAME", "app1")
# nginx's proxy_read_timeout (sessions_lab/cluster/templates/nginx/): a write
# answered later than this after nginx sent it is one nginx has given up on,
# and is logged as a late duplicate (shop/middleware.py).
LATE_WRITE_AFTER_S = float(os.environ.get("LATE_WRITE_AFTER_S", "5"))
# nginx waits this long for a login (a password hash queued behind others on a
# busy machine), and re-sends it like a GET: a login answered within it is
# not late (sessions_lab/cluster/templates/nginx/nginx.conf.tmpl).
LOGIN_WAIT_S = float(os.environ.get("LOGIN_WAIT_S", "30"))
LOGIN_PATHS = ("/api/session/login/", "/api/token/", "/api/token/refresh/", "/accounts/login/")
# Lab-only: hold each checkout this long after its order is written, before it
# commits, so a test can kill the instance mid-checkout. 0 (off) but in tests.
CHECKOUT_DELAY_S = float(os.environ.get("LAB_CHECKOUT_DELAY_S", "0"))

# Every instance of one deployment must share both keys: a session or token
# signed by app1 is checked by app2. They are distinct, so leaking one does
# not forge the other; outside DEBUG both are required.
SECRET_KEY = os.environ.get("SECRET_KEY", "")
JWT_SIGNING_KEY = os.environ.get("JWT_SIGNING_KEY", "")
if DEBUG:
    SECRET_KEY = SECRET_KEY or "django-insecure-debug-only-session-lab-key"
    JWT_SIGNING_KEY = JWT_SIGNING_KEY or "debug-only-jwt-signing-key-for-session-lab"
if not SECRET_KEY or not JWT_SIGNING_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY and JWT_SIGNING_KEY must be set outside DEBUG "
        "(`sessions-lab up` and `make demo` generate them for you)."
    )
if SECRET_KEY == JWT_SIGNING_KEY:
    raise ImproperlyConfigured("SECRET_KEY and JWT_SIGNING_KEY must differ.")

ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "shop",
]

ROOT_URLCONF = "sessions_lab.urls"
WSGI_APPLICATION = "sessions_lab.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "shop.context_processors.session_inspector",
            ],
        },
    },
]

# ------------------------------------------------------------------ database
# SQLite by default; every instance shares the file, so WAL (readers never
# wait for the writer), a busy timeout, and IMMEDIATE transactions (no
# read-then-upgrade deadlock) keep "database is locked" from becoming 500s.
# https://docs.djangoproject.com/en/5.2/ref/databases/#sqlite-notes
DEFAULT_SQLITE = BASE_DIR / ".lab" / "shop.sqlite3"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{DEFAULT_SQLITE}"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ------------------------------------------------------------------ auth
LOGIN_URL = "/accounts/login/"
# Django's ModelBackend, reading a session's user with one plain query (shop/users.py).
AUTHENTICATION_BACKENDS = ["shop.users.QuickModelBackend"]
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"
# Login throttling: failures live in the shared database (see shop/login_throttle.py).
LOGIN_FAILURES_PER_ACCOUNT = int(os.environ.get("LOGIN_FAILURES_PER_ACCOUNT", "5"))
LOGIN_FAILURES_PER_CLIENT = int(os.environ.get("LOGIN_FAILURES_PER_CLIENT", "20"))
LOGIN_FAILURE_WINDOW_SECONDS = int(os.environ.get("LOGIN_FAILURE_WINDOW_SECONDS", "300"))
# Only these peers may tell us the client's address in X-Forwarded-For: the
# lab's nginx runs on loopback. Anyone else could write any address there.
TRUSTED_PROXIES = os.environ.get("TRUSTED_PROXIES", "127.0.0.1,::1").split(",")
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# ------------------------------------------------------------------ cookies
# Secure cookies are never sent over plain http, and the lab serves plain http
# on loopback: it sets COOKIE_SECURE=0 for its own cluster, and the session
# inspector says so. Anywhere else the default is on.
COOKIE_SECURE = env_bool("COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_SECURE = COOKIE_SECURE
CSRF_COOKIE_SECURE = COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Clients read the token from their cookie jar or the page, never from script.
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = 60 * 60 * 24 * 2
# JSON, never pickle: a leaked SECRET_KEY must not become remote code execution.
# Encrypted with Fernet when SESSION_ENCRYPTION_KEYS is set, in every store and
# the cookie mode's cookie: signed is not secret (shop/sessions/encryption.py).
SESSION_SERIALIZER = "shop.sessions.encryption.SessionSerializer"
# Fernet keys, comma-separated, newest first (sessions are written under the
# first, read under any); empty: sessions are stored as plain JSON. Every
# instance must share them; a malformed one stops the instance at start-up.
SESSION_ENCRYPTION_KEYS = [
    key.strip() for key in os.environ.get("SESSION_ENCRYPTION_KEYS", "").split(",") if key.strip()
]
# Where a logged-in user's cart lives (shop/cart.py): in the session, or in
# rows per user in every mode. Anonymous carts live in the session either way.
CART_STORE = os.environ.get("CART_STORE", "session")
if CART_STORE not in CART_STORES:
    raise ImproperlyConfigured(
        f"CART_STORE={CART_STORE!r}: choose one of {', '.join(CART_STORES)}."
    )
# Messages live in their own cookie, so showing "added to cart" never writes
# a server session (jwt mode has none).
MESSAGE_STORAGE = "django.contrib.messages.storage.cookie.CookieStorage"
# Browsers drop a cookie over 4096 bytes without a word; the cart refuses to
# grow the signed-cookie session past this instead.
SESSION_COOKIE_LIMIT = 4096
# Django refuses larger bodies with 400; nginx stops anything over 1 MB with 413 first.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

# ------------------------------------------------------------------ JWT
# https://django-rest-framework-simplejwt.readthedocs.io/en/latest/settings.html
JWT_ACCESS_COOKIE = "access_token"
JWT_REFRESH_COOKIE = "refresh_token"
SIMPLE_JWT = {
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=int(os.environ.get("JWT_ACCESS_SECONDS", "300"))),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=1),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "LEEWAY": 0,
    "AUTH_HEADER_TYPES": ("Bearer",),
}

# ------------------------------------------------------------------ API
SPECTACULAR_SETTINGS = {
    "TITLE": "sessions lab shop API",
    "DESCRIPTION": "The JSON API of the demo shop; the contract Locust and the tests use.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Served from the installed package: a workshop may have no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# ------------------------------------------------------------------ static, i18n, logs
STATIC_URL = "static/"
# Only the container image collects static files; elsewhere WhiteNoise serves them from the apps.
STATIC_ROOT = os.environ.get("STATIC_ROOT") or None
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"  # every instance's log lines agree
USE_I18N = True
USE_TZ = True
DEMO_PASSWORD = os.environ.get("DEMO_PASSWORD", "demo-password")
LAB_DASHBOARD_URL = os.environ.get("LAB_DASHBOARD_URL", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}

# ------------------------------------------------------------------ session timeouts
# SESSION_IDLE_S and SESSION_ABSOLUTE_S (--session-idle, --session-absolute):
# whole seconds, or unset for none. With an idle limit, also the session age
# and the token lifetimes that enforce it (sessions_lab/timeout_settings.py).
# The shop enforces the rest, per mode (shop/timeouts.py).
try:
    globals().update(timeout_settings(os.environ, SIMPLE_JWT))
except ValueError as error:
    raise ImproperlyConfigured(str(error)) from None

# ------------------------------------------------------------------ session mode
# Last, because it decides the middleware, the API authentication, the
# session engine and its cache. See sessions_lab/modes.py.
SESSION_MODE = os.environ.get("SESSION_MODE", "db")
try:
    globals().update(get_mode(SESSION_MODE).settings(os.environ))
except ValueError as error:
    raise ImproperlyConfigured(str(error)) from None
