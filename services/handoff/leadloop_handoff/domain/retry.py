"""What happens after one delivery attempt: done, try again at a time, or a dead letter.

Pure: time comes in as ``now`` and randomness as ``jitter`` (uniform in [0, 1)), so the
whole schedule is testable without a clock. The backoff is exponential with full
jitter (the AWS architecture blog's "full jitter"), floored at half the step so that
a burst of failures spreads out without a retry ever coming back at once; a target's
``Retry-After`` wins when it asks for longer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from leadloop_handoff.domain.cards import Attempt

__all__ = ["Dead", "Delivered", "Next", "RetryAt", "RetryPolicy", "after_attempt", "status_class"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    #: The first retry waits about this long; each further one twice as long ...
    base_s: float = 1.0
    #: ... up to this. With 20 attempts and a 300 s cap a target may be down for about
    #: an hour before its first delivery is given up.
    cap_s: float = 300.0
    #: Attempts in all (the first send included) before a retryable failure is final.
    max_attempts: int = 20


@dataclass(frozen=True, slots=True)
class Delivered:
    at: datetime


@dataclass(frozen=True, slots=True)
class RetryAt:
    at: datetime


@dataclass(frozen=True, slots=True)
class Dead:
    #: Why: the target's own code, or ``attempts_exhausted:<code>``.
    code: str


Next = Delivered | RetryAt | Dead


def backoff_s(attempts: int, policy: RetryPolicy, jitter: float) -> float:
    """Delay before the next try after ``attempts`` failed tries (1, 2, …)."""
    step = min(policy.cap_s, policy.base_s * 2 ** max(0, attempts - 1))
    return step / 2 + step / 2 * jitter


def after_attempt(
    attempt: Attempt, attempts: int, now: datetime, policy: RetryPolicy, jitter: float
) -> Next:
    """``attempts`` counts this one. A ``failed`` attempt is final at once; a ``retry``
    is final once the attempts are used up."""
    if attempt.outcome == "delivered":
        return Delivered(now)
    if attempt.outcome == "failed":
        return Dead(attempt.code)
    if attempts >= policy.max_attempts:
        return Dead(f"attempts_exhausted:{attempt.code}")
    delay = backoff_s(attempts, policy, jitter)
    if attempt.retry_after_s is not None:
        # The target knows its own limits better than our schedule; a silly value
        # (a year) is still bounded by the cap so the row is looked at again.
        delay = max(delay, min(attempt.retry_after_s, policy.cap_s))
    return RetryAt(now + timedelta(seconds=delay))


def status_class(status: int | None) -> str:
    """The metric label for an HTTP status: 2xx … 5xx, or ``none`` when no reply came."""
    if status is None or not 100 <= status <= 599:
        return "none"
    return f"{status // 100}xx"
