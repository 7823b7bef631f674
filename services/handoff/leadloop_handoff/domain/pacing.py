"""A token bucket per target: at most ``rate`` requests a second on average, bursts of
``burst``. Pure: the caller passes the monotonic time and sleeps what it is told."""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a bucket needs rate > 0 and burst >= 1")
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._at = now

    def take(self, now: float) -> float:
        """Take one token; returns how long to wait before using it (0: at once).

        The token is taken even when the caller has to wait, so concurrent callers
        queue up behind each other instead of all waking at the same moment.
        """
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate
