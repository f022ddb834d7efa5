"""The one clock the tests move by hand, for code that takes its clock as an argument."""

from __future__ import annotations

import time


class FakeClock:
    """A clock (seconds) that moves only when told; starts at `start`, or at the real Unix time (whole seconds)
    so that signatures made on it verify."""

    def __init__(self, start: float | None = None) -> None:
        self.now = float(int(time.time())) if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds
