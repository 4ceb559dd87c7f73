"""``create_demo_users N``: user1..userN (and the ``demo`` account) for load tests and people.

The password is hashed once and the hash reused: with Django's default
hasher a hash costs ~0.4 s of CPU here, and 100 users must not cost 40 s.
The hasher itself is untouched — a login still costs what it costs in
production, which is why a simulated user logs in once, not per request.

Existing users keep their password hash: a new hash (a new salt) changes the
session auth hash Django keeps in each session, which logs the user out
everywhere. The command runs at every start of the lab (and again whenever
docker compose starts its one-shot `migrate`), so re-hashing would log every
shopper out mid-experiment. ``--reset-passwords`` sets them on purpose.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction


class Command(BaseCommand):
    help = "Create user1..userN and demo with the password DEMO_PASSWORD (default demo-password)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("count", type=int, help="how many load-test users (user1..userN)")
        parser.add_argument(
            "--reset-passwords",
            action="store_true",
            help="also set existing users' password to DEMO_PASSWORD (logs them out everywhere)",
        )

    @transaction.atomic
    def handle(
        self, *args: object, count: int, reset_passwords: bool = False, **options: object
    ) -> None:
        if count < 0:
            self.stderr.write("count must be 0 or more")
            raise SystemExit(2)
        user_model = get_user_model()
        hashed = make_password(settings.DEMO_PASSWORD)
        names = ["demo", *(f"user{i}" for i in range(1, count + 1))]
        existing = set(
            user_model.objects.filter(username__in=names).values_list("username", flat=True)
        )
        user_model.objects.bulk_create(
            user_model(username=name, password=hashed) for name in names if name not in existing
        )
        kept = user_model.objects.filter(username__in=existing)
        if reset_passwords:
            kept.update(password=hashed, is_active=True)
        else:
            kept.filter(is_active=False).update(is_active=True)
        self.stdout.write(
            f"{len(names)} demo users ready (demo, user1..user{count}); "
            f"{len(existing)} existed and kept their password"
            + (" (reset, as asked)." if reset_passwords else ".")
        )
