"""The per-target token bucket never lets more through than its rate and burst allow."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from leadloop_handoff.domain.pacing import TokenBucket


def test_burst_then_paced() -> None:
    bucket = TokenBucket(rate=10, burst=2, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [0.0, 0.0, 0.1, 0.2]


@given(
    st.floats(min_value=0.5, max_value=100),
    st.integers(min_value=1, max_value=10),
    st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=50),
)
def test_sends_never_exceed_rate_times_time_plus_burst(
    rate: float, burst: int, gaps: list[float]
) -> None:
    bucket = TokenBucket(rate=rate, burst=burst, now=0.0)
    now = 0.0
    send_times = []
    for gap in gaps:
        now += gap
        send_times.append(now + bucket.take(now))
    last = max(send_times)
    # Every request is sent when told; by any time t at most burst + rate * t have gone.
    assert len([t for t in send_times if t <= last]) <= burst + rate * last + 1e-6
