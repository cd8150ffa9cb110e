"""A clock for tests: it moves only when told to."""

from __future__ import annotations

__all__ = ["FixedClock"]


class FixedClock:
    """A clock that moves only when told to (tests)."""

    def __init__(self, now_us: int = 1_700_000_000_000_000) -> None:
        self.value = now_us

    def now_us(self) -> int:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += int(seconds * 1_000_000)
