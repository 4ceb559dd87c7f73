"""``create_demo_users N``: user1..userN (and the ``demo`` account) for load tests and people.

The password is hashed once and the hash reused: with Django's default
hasher a hash costs ~0.4 s of CPU here, and 100 users must not cost 40 s.
The hasher itself is untouched — a login still costs what it costs in
production, which is why a simulated user logs in once, not per request.
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

    @transaction.atomic
    def handle(self, *args: object, count: int, **options: object) -> None:
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
        user_model.objects.filter(username__in=existing).update(password=hashed, is_active=True)
        self.stdout.write(f"{len(names)} demo users ready (demo, user1..user{count}).")
