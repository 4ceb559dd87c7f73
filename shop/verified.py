"""Signed values this process has verified, so each is checked once rather than on every request.

A JWT or a signed session cookie that passed its signature check passes it
again, byte for byte, until it expires: with the signing keys fixed and
nothing revoked, the check depends only on the value and the clock. A
client sends the same value with every request until it changes, so its
first request pays the check (tens of µs) and the next ones a dictionary
lookup. Only values that passed are kept, under their exact text, so a
forged or altered one always gets the full check; the expiry is checked on
every hit. A change of the keys or lifetimes in settings forgets everything
(``shop.apps``). Per process and bounded: a full memory starts over, which,
like losing it, costs only checks done again; nothing is shared between
instances.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_EVERY: weakref.WeakSet[VerifiedValues[Any]] = weakref.WeakSet()


def forget_everything() -> None:
    """Forget every check remembered in this process: the keys or lifetimes changed."""
    for values in list(_EVERY):
        values.clear()


class VerifiedValues(Generic[T]):
    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._values: dict[Hashable, tuple[T, float]] = {}
        _EVERY.add(self)

    def get(self, raw: Hashable) -> T | None:
        """What the check of ``raw`` gave, if it passed here and has not expired since."""
        entry = self._values.get(raw)
        if entry is None:
            return None
        value, expires_at = entry
        if time.time() >= expires_at:
            self._values.pop(raw, None)
            return None
        return value

    def add(self, raw: Hashable, value: T, expires_at: float) -> None:
        """Remember that ``raw`` passed its check and gave ``value``, until ``expires_at`` (epoch s)."""
        if len(self._values) >= self.max_entries:
            self._values.clear()  # full: start over, which costs only checks done again
        self._values[raw] = (value, expires_at)

    def clear(self) -> None:
        self._values.clear()
