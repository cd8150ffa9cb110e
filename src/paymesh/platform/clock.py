"""Time and ids, injectable so that domains and tests control them."""

from __future__ import annotations

import secrets
import time
from typing import Protocol

__all__ = ["Clock", "SystemClock", "new_id"]


class Clock(Protocol):
    """Wall-clock time in microseconds since the Unix epoch."""

    def now_us(self) -> int: ...


class SystemClock:
    """The real clock."""

    def now_us(self) -> int:
        return time.time_ns() // 1_000


_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_id(prefix: str) -> str:
    """A random opaque id with a type prefix, e.g. ``pay_4k9x…`` (128 bits)."""
    n = secrets.randbits(128)
    chars = []
    while n:
        n, r = divmod(n, 36)
        chars.append(_ALPHABET[r])
    return f"{prefix}_{''.join(reversed(chars)).rjust(25, '0')}"
