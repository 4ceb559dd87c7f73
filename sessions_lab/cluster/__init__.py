"""The native cluster: nginx, N gunicorn instances, Redis and PostgreSQL on loopback."""
