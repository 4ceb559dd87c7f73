"""The shopper who logs in: its demo account, and the journey its mode calls for.

Each shopper logs in as a demo user of its own (``user1``..``userN``, made by
``manage.py create_demo_users N``), numbered in the order Locust starts them.
Distinct accounts matter most in ``jwt`` mode, where the cart belongs to the
account: two simulated shoppers on one account would see each other's cart
changes as losses. With more users than ``--demo-users`` the numbers wrap.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from locust import TaskSet

from loadtests.jwt_shopping import JwtShopping
from loadtests.run_log import RUN
from loadtests.session_shopping import SessionShopping
from loadtests.shop_user import JWT_MODE, ShopUser
from loadtests.two_tabs import two_tab_journey

DEFAULT_DEMO_USERS = 10  # what `sessions-lab up` creates
DEFAULT_DEMO_PASSWORD = "demo-password"  # noqa: S105 - the documented demo password
# --idle-pause: which shoppers pause (every third), and after how many steps
# (logged in and shopping by then: the pause interrupts a live session).
PAUSING_EVERY = 3
STEPS_BEFORE_PAUSE = 5

logger = logging.getLogger(__name__)


def demo_username(number: int, demo_users: int) -> str:
    """The demo account of shopper ``number`` (from 1), wrapping after ``demo_users``."""
    return f"user{(number - 1) % max(1, demo_users) + 1}"


class Shopper(ShopUser):
    """A customer who logs in once and shops, checking its session after every step."""

    weight = 3
    numbering = "shopper"

    def __init__(self, environment: Any) -> None:
        self.shopper_number = RUN.number(self.numbering)
        options = environment.parsed_options
        self.demo_users = int(getattr(options, "demo_users", DEFAULT_DEMO_USERS))
        self.username = demo_username(self.shopper_number, self.demo_users)
        super().__init__(environment)
        self.password = str(self.option("demo_password", DEFAULT_DEMO_PASSWORD))
        # --idle-pause: every third shopper stays away once, after a few steps.
        pause = float(self.option("idle_pause", 0) or 0)
        self.pause_s = pause if self.shopper_number % PAUSING_EVERY == 0 else 0.0
        self.steps = 0

    def wait_time(self) -> float:
        """The think time between steps; once, for a pausing shopper, the pause itself."""
        self.steps += 1
        if self.pause_s and self.record.paused_at is None and self.steps > STEPS_BEFORE_PAUSE:
            self.record.paused_at, self.record.paused_s = time.time(), self.pause_s
            return self.pause_s
        return super().wait_time()

    def display_name(self) -> str:
        return self.username

    def journey_for(self, mode: str) -> type[TaskSet]:
        if mode == JWT_MODE and self.shopper_number > self.demo_users:
            logger.warning(
                "%d shoppers share %d demo users: in jwt mode shoppers on one account "
                "share a cart, and will report each other's changes as cart_mismatch. "
                "Create more demo users (--demo-users).",
                self.shopper_number,
                self.demo_users,
            )
        if int(self.option("tabs", 1)) > 1:
            return two_tab_journey(mode)
        return JwtShopping if mode == JWT_MODE else SessionShopping
