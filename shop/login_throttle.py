"""Login throttling shared by every instance and every mode, keyed by account.

Failures are rows in the database (every mode has one), so five wrong
passwords spread over three instances still count as five. The account is
the key; a client address only where it can be trusted — the lab's nginx
on loopback sets ``X-Forwarded-For``, and only then is that header read.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from shop.models import LoginFailure

GENERIC_LOGIN_ERROR = "Invalid username or password."


@dataclass(frozen=True)
class Refusal:
    retry_after: int  # seconds

    @property
    def message(self) -> str:
        return f"Too many failed logins. Try again in {self.retry_after} seconds."


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: the proxy's ``X-Forwarded-For`` only when the proxy is trusted."""
    remote = request.META.get("REMOTE_ADDR", "")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if forwarded and remote in settings.TRUSTED_PROXIES:
        remote = forwarded.split(",")[-1].strip()
    try:
        return str(ipaddress.ip_address(remote))
    except ValueError:
        return None


def _account_key(username: str) -> str:
    return username.strip().lower()[:150]


def login_refusal(request: HttpRequest, username: str) -> Refusal | None:
    """A refusal if this account (or trusted client address) failed too often lately."""
    window = timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    since = timezone.now() - window
    recent = LoginFailure.objects.filter(at__gte=since)
    by_account = recent.filter(username=_account_key(username))
    ip = client_ip(request)
    for failures, limit in (
        (by_account, settings.LOGIN_FAILURES_PER_ACCOUNT),
        (recent.filter(client_ip=ip) if ip else None, settings.LOGIN_FAILURES_PER_CLIENT),
    ):
        if failures is None:
            continue
        times = list(failures.order_by("-at").values_list("at", flat=True)[:limit])
        if len(times) >= limit:
            oldest_counted = times[-1]
            wait = (oldest_counted + window - timezone.now()).total_seconds()
            return Refusal(retry_after=max(1, int(wait) + 1))
    return None


def record_login_failure(request: HttpRequest, username: str) -> None:
    LoginFailure.objects.create(username=_account_key(username), client_ip=client_ip(request))
    # Keep the table small: rows older than the window count for nothing.
    cutoff = timezone.now() - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    LoginFailure.objects.filter(at__lt=cutoff).delete()


def clear_login_failures(username: str) -> None:
    LoginFailure.objects.filter(username=_account_key(username)).delete()
