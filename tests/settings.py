"""The shop's settings for the test run: the real file, with test-only keys and a fast hasher."""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-not-for-any-deployment-0123456789")
os.environ.setdefault("JWT_SIGNING_KEY", "tests-only-jwt-signing-key-not-for-any-deployment-98765")
os.environ.setdefault("COOKIE_SECURE", "0")

from sessions_lab.settings import *  # noqa: F403

# Tests only: PBKDF2 costs ~0.4 s per login here, and the suite logs in hundreds of times.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
