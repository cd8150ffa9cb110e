"""Time and ids, injectable so that domains and tests control them."""

from __future__ import annotations

import secrets
import time
from typing import Protocol

__all__ = ["Clock", "FixedClock", "SystemClock", "new_id"]


class Clock(Protocol):
    """Wall-clock time in microseconds since the Unix epoch."""

    def now_us(self) -> int: ...


class SystemClock:
    """The real clock."""

    def now_us(self) -> int:
        return time.time_ns() // 1_000


class FixedClock:
    """A clock that moves only when told to (tests)."""

    def __init__(self, now_us: int = 1_700_000_000_000_000) -> None:
        self.value = now_us

    def now_us(self) -> int:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += int(seconds * 1_000_000)


_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_id(prefix: str) -> str:
    """A random opaque id with a type prefix, e.g. ``pay_4k9x…`` (128 bits)."""
    n = secrets.randbits(128)
    chars = []
    while n:
        n, r = divmod(n, 36)
        chars.append(_ALPHABET[r])
    return f"{prefix}_{''.join(reversed(chars)).rjust(25, '0')}"
