"""``create_demo_users`` run again (every `up`, every compose `migrate`) logs nobody out."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client


def logged_in(user: str) -> Client:
    client = Client()
    assert client.login(username=user, password="demo-password")
    return client


def authenticated(client: Client) -> bool:
    return bool(client.get("/api/whoami/").json()["authenticated"])


@pytest.mark.django_db
def test_running_it_twice_keeps_every_session_and_password() -> None:
    call_command("create_demo_users", "3")
    before = dict(get_user_model().objects.values_list("username", "password"))
    clients = [logged_in(name) for name in ("demo", "user1", "user3")]
    call_command("create_demo_users", "5")  # again, with more users
    after = dict(get_user_model().objects.values_list("username", "password"))
    assert {name: after[name] for name in before} == before  # not one hash changed
    assert {"user4", "user5"} <= set(after)
    assert all(authenticated(client) for client in clients)


@pytest.mark.django_db
def test_reset_passwords_is_asked_for_and_logs_out() -> None:
    call_command("create_demo_users", "1")
    client = logged_in("user1")
    get_user_model().objects.filter(username="user1").update(is_active=False)
    call_command("create_demo_users", "1", reset_passwords=True)
    assert get_user_model().objects.get(username="user1").is_active
    assert not authenticated(client)  # a new hash: the old session is no longer valid


@pytest.mark.django_db
def test_a_deactivated_demo_user_is_made_active_again_without_a_new_hash() -> None:
    call_command("create_demo_users", "1")
    get_user_model().objects.filter(username="user1").update(is_active=False)
    before = get_user_model().objects.get(username="user1").password
    call_command("create_demo_users", "1")
    user = get_user_model().objects.get(username="user1")
    assert user.is_active and user.password == before
