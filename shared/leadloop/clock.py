"""Time is injected: decision code takes ``now`` and services take a ``Clock``.

A ten-minute SLA must be testable in milliseconds, so nothing reads the wall clock
except ``SystemClock``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "FixedClock", "ScaledClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that moves only when told to (tests)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware start")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, when: datetime) -> None:
        self._now = when


class ScaledClock:
    """Time that runs ``factor`` times faster than real time from ``origin`` (tests).

    An accelerated run reads ``origin + elapsed * factor``, where ``elapsed`` is real
    time measured on the monotonic clock since construction: days of business time
    pass in seconds, and a jump of the wall clock does not move it.
    """

    def __init__(
        self,
        factor: float,
        origin: datetime | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if factor <= 0:
            raise ValueError("ScaledClock needs a positive factor")
        if origin is not None and origin.tzinfo is None:
            raise ValueError("ScaledClock needs a timezone-aware origin")
        self._factor = factor
        self._origin = origin or datetime.now(UTC)
        self._monotonic = monotonic
        self._started = monotonic()

    def now(self) -> datetime:
        elapsed = (self._monotonic() - self._started) * self._factor
        return self._origin + timedelta(seconds=elapsed)
