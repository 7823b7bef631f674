"""Replay protection of the signed endpoints: the pure reservation (``domain.replays``)
and its use by the lead webhook, the CRM feedback and Meta's envelope, with an in-memory
cache that behaves as the PostgreSQL one (first insert wins, an expired key is taken
over, a release frees only its own reservation)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from structlog.testing import capture_logs

from leadloop.clock import FixedClock
from leadloop.messaging import OutMessage
from leadloop_ingest.adapters.feedback_http import Feedback
from leadloop_ingest.adapters.http import Webhook
from leadloop_ingest.adapters.intake_http import Replays
from leadloop_ingest.domain.replays import DEFAULT_RETENTION_S, Reservation, reservation

NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
SECRET = "webhook-secret-0123456789"
LEAD = json.dumps({"source": "web", "source_lead_id": "w-1"}).encode()


class MemoryCache:
    """The replay cache's contract (``ports.ReplayCache``) in a dict."""

    def __init__(self, *, down: bool = False) -> None:
        self.rows: dict[bytes, Reservation] = {}
        self.down = down

    async def reserve(self, reservation: Reservation) -> bool:
        if self.down:
            raise ConnectionRefusedError
        held = self.rows.get(reservation.key)
        if held is not None and held.expires_at > reservation.reserved_at:
            return False
        self.rows[reservation.key] = reservation
        return True

    async def release(self, reservation: Reservation) -> None:
        if self.rows.get(reservation.key) == reservation:
            del self.rows[reservation.key]

    async def purge(self, now: datetime) -> int:
        expired = [k for k, r in self.rows.items() if r.expires_at <= now]
        for k in expired:
            del self.rows[k]
        return len(expired)


class Raw:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.fail = False

    async def __call__(
        self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        if self.fail:
            raise ConnectionError
        self.sent.append(value)


def signed(body: bytes, *, ts: datetime = NOW) -> dict[str, str]:
    stamp = int(ts.timestamp())
    mac = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Leadloop-Timestamp": str(stamp), "X-Leadloop-Signature": f"sha256={mac}"}


async def once(body: bytes) -> AsyncIterator[bytes]:
    yield body


def webhook(raw: Raw, cache: MemoryCache, clock: FixedClock, counted: list[str]) -> Webhook:
    return Webhook(
        publish_raw=raw,
        secrets={"web": SecretStr(SECRET)},
        schemes={"web": "leadloop"},
        sources=frozenset({"web"}),
        prevalidate=lambda source, body: None,
        clock=clock,
        replays=Replays(cache, clock, counted=counted.append),
        tolerance_s=300,
    )


# --- the pure part -------------------------------------------------------------------


def test_a_timestamped_request_is_kept_until_it_could_no_longer_verify() -> None:
    past = NOW - timedelta(seconds=100)
    r = reservation(
        scope="lead:web", signature="sha256=AB", signed_at=past, now=NOW, tolerance_s=300
    )
    assert r.expires_at == past + timedelta(seconds=301)
    assert r.reserved_at == NOW
    future = NOW + timedelta(seconds=200)
    ahead = reservation(
        scope="lead:web", signature="sha256=AB", signed_at=future, now=NOW, tolerance_s=300
    )
    assert ahead.expires_at == future + timedelta(seconds=301)


def test_an_untimestamped_request_is_kept_for_the_retention() -> None:
    r = reservation(scope="meta:ads", signature="x", signed_at=None, now=NOW, tolerance_s=0)
    assert r.expires_at == NOW + timedelta(seconds=DEFAULT_RETENTION_S)
    short = reservation(
        scope="meta:ads", signature="x", signed_at=None, now=NOW, tolerance_s=0, retention_s=60
    )
    assert short.expires_at == NOW + timedelta(seconds=60)


@given(
    st.from_regex(r"sha256=[0-9a-f]{64}", fullmatch=True),
    st.text(min_size=1, max_size=20),
    st.text(min_size=1, max_size=20),
)
def test_the_key_is_per_scope_and_ignores_hex_case_and_spaces(sig: str, a: str, b: str) -> None:
    def key(scope: str, signature: str) -> bytes:
        return reservation(
            scope=scope, signature=signature, signed_at=None, now=NOW, tolerance_s=0
        ).key

    assert len(key(a, sig)) == 32
    assert key(a, f"  {sig.upper()} ") == key(a, sig)
    if a != b:
        assert key(a, sig) != key(b, sig)


# --- the lead webhook ------------------------------------------------------------------


async def test_a_second_delivery_is_409_replayed_counted_and_not_published() -> None:
    raw, cache, clock = Raw(), MemoryCache(), FixedClock(NOW)
    counted: list[str] = []
    hook = webhook(raw, cache, clock, counted)
    headers = signed(LEAD)
    assert (await hook.handle("web", headers, once(LEAD))).status == 202
    with capture_logs() as logs:
        reply = await hook.handle("web", headers, once(LEAD))
    assert (reply.status, reply.body) == (409, {"error": "replayed"})
    assert raw.sent == [LEAD]
    assert counted == ["lead"]
    assert {"event": "webhook_refused", "status": 409, "reason": "replayed"}.items() <= logs[
        -1
    ].items()
    # The same lead signed at another second is another request (a sender's own resend).
    later = signed(LEAD, ts=NOW + timedelta(seconds=1))
    assert (await hook.handle("web", later, once(LEAD))).status == 202


async def test_a_reservation_expires_with_the_window_and_is_purged() -> None:
    raw, cache, clock = Raw(), MemoryCache(), FixedClock(NOW)
    counted: list[str] = []
    hook = webhook(raw, cache, clock, counted)
    assert (await hook.handle("web", signed(LEAD), once(LEAD))).status == 202
    assert await cache.purge(NOW + timedelta(seconds=300)) == 0
    assert await cache.purge(NOW + timedelta(seconds=301)) == 1


async def test_our_failure_releases_the_reservation_so_the_retry_gets_through() -> None:
    raw, cache, clock = Raw(), MemoryCache(), FixedClock(NOW)
    counted: list[str] = []
    hook = webhook(raw, cache, clock, counted)
    headers = signed(LEAD)
    raw.fail = True
    assert (await hook.handle("web", headers, once(LEAD))).status == 503
    assert cache.rows == {}
    raw.fail = False
    assert (await hook.handle("web", headers, once(LEAD))).status == 202
    assert (await hook.handle("web", headers, once(LEAD))).status == 409


async def test_refused_requests_reserve_nothing() -> None:
    raw, cache, clock = Raw(), MemoryCache(), FixedClock(NOW)
    counted: list[str] = []
    hook = webhook(raw, cache, clock, counted)
    bad = {**signed(LEAD), "X-Leadloop-Signature": "sha256=" + "0" * 64}
    assert (await hook.handle("web", bad, once(LEAD))).status == 401
    assert cache.rows == {}


async def test_an_unreachable_cache_is_503_not_an_unprotected_accept() -> None:
    raw, cache, clock = Raw(), MemoryCache(down=True), FixedClock(NOW)
    counted: list[str] = []
    hook = webhook(raw, cache, clock, counted)
    reply = await hook.handle("web", signed(LEAD), once(LEAD))
    assert (reply.status, reply.headers.get("Retry-After")) == (503, "5")
    assert raw.sent == []


# --- CRM feedback ------------------------------------------------------------------------


async def test_crm_feedback_replays_are_refused_per_client() -> None:
    published: list[object] = []

    async def publish(messages: Sequence[OutMessage]) -> None:
        published.append(messages)

    cache, clock = MemoryCache(), FixedClock(NOW)
    counted: list[str] = []
    feedback = Feedback(
        publish=publish,
        secrets={"crm-a": SecretStr(SECRET)},
        clock=clock,
        replays=Replays(cache, clock, counted=counted.append),
    )
    body = json.dumps(
        {
            "event_id": "a-1",
            "lead_id": "lead-1",
            "rep_id": "rep-1",
            "kind": "call",
            "occurred_at": NOW.isoformat(),
        }
    ).encode()
    headers = {**signed(body), "X-Leadloop-Client": "crm-a"}
    first = await feedback.handle("activities", headers, once(body))
    assert first.status == 202, first.body
    assert (await feedback.handle("activities", headers, once(body))).status == 409
    assert counted == ["crm"]
    assert len(published) == 1
