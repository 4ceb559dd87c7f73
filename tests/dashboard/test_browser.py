"""The dashboard in a real browser: a workshop kills app2 with a click and watches.

A real 3-instance cluster (redis mode: round robin, so every instance has a
share of the traffic), paced GET requests to nginx from a thread, and Debian's
headless Chromium clicking the page's own buttons.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster.lab import wait_until
from tests.dashboard.browser import BackgroundLoad

pytestmark = pytest.mark.cluster

WINDOW_S = 5  # the dashboard's rolling rate window (traffic.WINDOW_S)


def card_attribute(browser: Any, name: str, selector: str, attribute: str) -> str | None:
    """An attribute of an element of ``name``'s card, or None while the page has not
    drawn it yet (the cards appear with the first poll, and are redrawn each second)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        card = browser.find_element(By.CSS_SELECTOR, f'article.card[data-process="{name}"]')
        element = card.find_element(By.CSS_SELECTOR, selector) if selector else card
        return element.get_attribute(attribute)
    except (NoSuchElementException, StaleElementReferenceException):
        return None


def card_state(browser: Any, name: str) -> str:
    return card_attribute(browser, name, "", "data-state") or ""


def rate(browser: Any, name: str) -> float:
    value = card_attribute(browser, name, ".rate", "data-rate")
    return float(value) if value else -1.0


def click(browser: Any, action: str, target: str, signal: str = "") -> None:
    from selenium.webdriver.common.by import By

    browser.find_element(
        By.CSS_SELECTOR,
        f'button[data-action="{action}"][data-target="{target}"][data-signal="{signal}"]',
    ).click()


@pytest.mark.timeout(150)
def test_killing_app2_from_the_page_moves_its_traffic_to_the_others(make_lab, browser) -> None:
    lab = make_lab("--mode", "redis", "--instances", "3")
    dashboard_url = lab.state()["dashboard_url"]
    assert dashboard_url.startswith("http://127.0.0.1:")

    with BackgroundLoad(f"{lab.url}/healthz", rate=40) as load:
        browser.get(dashboard_url)
        wait_until(lambda: card_state(browser, "app2") == "healthy", 15, "app2's card is healthy")
        # A full window of traffic, so the rates before the kill are the real share.
        wait_until(
            lambda: (
                load.running_for() > WINDOW_S + 1.5
                and all(rate(browser, app) > 0 for app in ("app1", "app2", "app3"))
            ),
            20,
            "every instance shows a request rate",
        )
        before = {app: rate(browser, app) for app in ("app1", "app2", "app3")}

        click(browser, "kill", "app2", "KILL")
        wait_until(lambda: card_state(browser, "app2") == "killed", 15, "app2's card says killed")
        assert lab.process("app2")["status"] == "exited"  # the supervisor did it, not the page
        wait_until(
            lambda: (
                rate(browser, "app2") == 0.0
                and rate(browser, "app1") > before["app1"] * 1.2
                and rate(browser, "app3") > before["app3"] * 1.2
            ),
            WINDOW_S + 15,
            f"app2's rate falls to zero while app1 and app3 rise above {before}",
        )

        click(browser, "start", "app2")
        wait_until(lambda: card_state(browser, "app2") == "healthy", 30, "app2 is healthy again")
        assert lab.process("app2")["healthy"]
    assert load.sent > 0
