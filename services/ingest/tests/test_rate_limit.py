"""The per-client token bucket of ingest's HTTP limits (``domain.rate_limit``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadloop_ingest.domain.rate_limit import RateLimiter


def test_a_burst_then_the_rate_and_a_retry_after_that_is_honest() -> None:
    limiter = RateLimiter(rate_per_s=2.0, burst=3)
    assert [limiter.take("a", 0.0) for _ in range(3)] == [None, None, None]
    assert limiter.take("a", 0.0) == 1  # half a second to the next token: at least 1 s
    assert limiter.take("b", 0.0) is None  # another client has its own bucket
    assert limiter.take("a", 0.5) is None
    assert limiter.take("a", 0.5) == 1
    assert [limiter.take("a", 10.0) for _ in range(4)] == [None, None, None, 1]  # refilled to burst


def test_slow_rates_say_how_long_to_wait() -> None:
    limiter = RateLimiter(rate_per_s=0.1, burst=1)
    assert limiter.take("a", 0.0) is None
    assert limiter.take("a", 0.0) == 10
    assert limiter.take("a", 4.0) == 6


def test_the_client_table_is_bounded_and_forgets_the_least_recent() -> None:
    limiter = RateLimiter(rate_per_s=1.0, burst=1, max_clients=2)
    assert limiter.take("a", 0.0) is None
    assert limiter.take("b", 0.0) is None
    assert limiter.take("a", 0.0) == 1  # a is now the most recent
    assert limiter.take("c", 0.0) is None  # b forgotten
    assert len(limiter) == 2
    assert limiter.take("a", 0.0) == 1


def test_a_clock_going_back_grants_nothing() -> None:
    limiter = RateLimiter(rate_per_s=1.0, burst=1)
    assert limiter.take("a", 100.0) is None
    assert limiter.take("a", 50.0) == 1
    assert limiter.take("a", 100.5) == 1
    assert limiter.take("a", 101.0) is None


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="rate_per_s"):
        RateLimiter(rate_per_s=0, burst=1)


@given(
    st.floats(min_value=0.01, max_value=1000),
    st.integers(min_value=1, max_value=50),
    st.lists(st.floats(min_value=0, max_value=1000), min_size=1, max_size=200),
)
def test_never_more_than_burst_plus_rate_times_time(
    rate: float, burst: int, times: list[float]
) -> None:
    limiter = RateLimiter(rate_per_s=rate, burst=burst)
    times = sorted(times)
    granted = sum(limiter.take("a", t) is None for t in times)
    assert granted <= burst + rate * (times[-1] - times[0]) + 1e-6
    # And a refusal's Retry-After is a whole number of seconds, at least one.
    wait = limiter.take("a", times[-1])
    assert wait is None or (isinstance(wait, int) and wait >= 1)
