"""The retry schedule: final outcomes, backoff growth and its cap, Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from leadloop_handoff.domain.cards import Attempt
from leadloop_handoff.domain.retry import (
    Dead,
    Delivered,
    RetryAt,
    RetryPolicy,
    after_attempt,
    backoff_s,
    status_class,
)

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
POLICY = RetryPolicy(base_s=1.0, cap_s=60.0, max_attempts=5)


def test_delivered_is_final() -> None:
    assert after_attempt(Attempt("delivered", 201, "ok"), 1, NOW, POLICY, 0.5) == Delivered(NOW)


def test_failed_is_a_dead_letter_with_the_targets_code() -> None:
    got = after_attempt(Attempt("failed", 400, "INVALID_FIELD"), 1, NOW, POLICY, 0.5)
    assert got == Dead("INVALID_FIELD")


def test_retry_until_the_attempts_are_used_up() -> None:
    attempt = Attempt("retry", 503, "http_503")
    assert isinstance(after_attempt(attempt, 4, NOW, POLICY, 0.0), RetryAt)
    assert after_attempt(attempt, 5, NOW, POLICY, 0.0) == Dead("attempts_exhausted:http_503")


def test_backoff_doubles_and_stops_at_the_cap() -> None:
    assert [backoff_s(n, POLICY, 1.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_s(30, POLICY, 1.0) == 60.0
    assert backoff_s(3, POLICY, 0.0) == 2.0  # never below half the step


def test_retry_after_wins_when_longer_and_is_capped() -> None:
    asked = after_attempt(Attempt("retry", 429, "http_429", retry_after_s=30), 1, NOW, POLICY, 0)
    assert asked == RetryAt(NOW + timedelta(seconds=30))
    silly = after_attempt(Attempt("retry", 429, "http_429", retry_after_s=1e9), 1, NOW, POLICY, 0)
    assert silly == RetryAt(NOW + timedelta(seconds=60))


@given(st.integers(min_value=1, max_value=100), st.floats(min_value=0, max_value=0.999))
def test_backoff_is_within_half_and_whole_step(attempts: int, jitter: float) -> None:
    step = min(POLICY.cap_s, POLICY.base_s * 2 ** (attempts - 1))
    assert step / 2 <= backoff_s(attempts, POLICY, jitter) <= step


def test_status_classes() -> None:
    assert [status_class(s) for s in (None, 200, 404, 503, 42)] == [
        "none",
        "2xx",
        "4xx",
        "5xx",
        "none",
    ]
