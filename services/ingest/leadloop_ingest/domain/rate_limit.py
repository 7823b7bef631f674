"""Per-client rate limits for ingest's HTTP endpoints: a token bucket per client address.

Each client may send ``burst`` requests at once and ``rate_per_s`` a second after that;
a request beyond is refused with the seconds until a token is back (the 429's
``Retry-After``). The table of clients is bounded (``max_clients``): when it is full the
least recently seen client is forgotten, which can only ever grant it a fresh bucket
(a flood from many addresses is then limited by the connection cap instead). Pure:
``now`` is a monotonic time in seconds handed in.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["RateLimiter"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(self, *, rate_per_s: float, burst: int, max_clients: int = 10_000) -> None:
        if rate_per_s <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate_per_s > 0, burst >= 1 and max_clients >= 1")
        self._rate = rate_per_s
        self._burst = float(burst)
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client: str, now: float) -> int | None:
        """None when ``client`` may go ahead (a token is spent); else whole seconds, at
        least 1, until it may try again."""
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = _Bucket(self._burst, now)
            self._buckets[client] = bucket
            if len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
            # A clock that went back refills nothing and takes nothing.
            elapsed = max(0.0, now - bucket.at)
            bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
            bucket.at = max(bucket.at, now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - bucket.tokens) / self._rate))
