"""The lead webhook's answers, and the shared intake plumbing under it
(``adapters/intake_http.py``): status, reason, headers and log line for each refusal, the
in-flight cap and the shielded publish timeout. No broker: the publisher is a fake."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from leadloop.clock import FixedClock
from leadloop_ingest.adapters.http import REALM, Webhook
from leadloop_ingest.adapters.intake_http import Sends, TooLarge, read_body, refusal

NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
SECRET = "webhook-secret-0123456789"
LEAD = json.dumps({"source": "web", "source_lead_id": "w-1"}).encode()


class Raw:
    def __init__(self, *, delay: float = 0.0, fail: Exception | None = None) -> None:
        self.sent: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = []
        self.delay = delay
        self.fail = fail

    async def __call__(
        self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        self.sent.append((key, value, headers))


def signed(body: bytes, *, secret: str = SECRET, ts: datetime = NOW) -> dict[str, str]:
    stamp = int(ts.timestamp())
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Leadloop-Timestamp": str(stamp), "X-Leadloop-Signature": f"sha256={mac}"}


async def chunks(body: bytes, *, pause: float = 0.0) -> AsyncIterator[bytes]:
    for i in range(0, len(body), 100):
        await asyncio.sleep(pause)
        yield body[i : i + 100]


def webhook(raw: Raw, **limits: Any) -> Webhook:
    return Webhook(
        publish_raw=raw,
        secrets={"web": SecretStr(SECRET)},
        schemes={"web": "leadloop"},
        sources=frozenset({"web", "unsigned"}),
        prevalidate=lambda source, body: None if body.startswith(b"{") else "invalid_json",
        clock=FixedClock(NOW),
        **limits,
    )


BIG = b"{" + b" " * 3000 + b"}"


@pytest.mark.parametrize(
    ("source", "headers", "body", "limits", "status", "reason", "extra", "size"),
    [
        ("nope", {}, LEAD, {}, 404, "unknown_source", {}, None),
        (
            "web",
            {**signed(BIG), "Content-Length": str(len(BIG))},
            BIG,
            {"max_body_bytes": 1024},
            413,
            "too_large",
            {"Connection": "close"},
            len(BIG),
        ),
        ("unsigned", {}, LEAD, {}, 401, "unknown_source", {"WWW-Authenticate": REALM}, None),
        (
            "web",
            signed(BIG),
            BIG,
            {"max_body_bytes": 1024},
            413,
            "too_large",
            {"Connection": "close"},
            1024,
        ),
        ("web", {}, LEAD, {}, 401, "missing_signature", {"WWW-Authenticate": REALM}, len(LEAD)),
        (
            "web",
            signed(LEAD, ts=NOW - timedelta(minutes=6)),
            LEAD,
            {},
            401,
            "stale_timestamp",
            {"WWW-Authenticate": REALM},
            len(LEAD),
        ),
        ("web", signed(b"[1]"), b"[1]", {}, 422, "invalid_json", {}, 3),
    ],
)
async def test_refusals_say_status_reason_and_headers_and_log_no_body(
    source: str,
    headers: dict[str, str],
    body: bytes,
    limits: dict[str, Any],
    status: int,
    reason: str,
    extra: dict[str, str],
    size: int | None,
) -> None:
    raw = Raw()
    with capture_logs() as logs:
        reply = await webhook(raw, **limits).handle(source, headers, chunks(body))
    assert (reply.status, reply.body, reply.headers) == (status, {"error": reason}, extra)
    logged = source if source != "nope" else "other"
    assert logs == [
        {
            "event": "webhook_refused",
            "log_level": "info",
            "status": status,
            "reason": reason,
            "source": logged,
            "bytes": size,
        }
    ]
    assert raw.sent == []


async def test_a_slow_body_is_408_and_closes_the_connection() -> None:
    body = b"{" + b" " * 298 + b"}"  # three chunks, 30 ms apart
    hook = webhook(Raw(), read_timeout_s=0.05)
    reply = await hook.handle("web", signed(body), chunks(body, pause=0.03))
    assert (reply.status, reply.body) == (408, {"error": "body_timeout"})
    assert reply.headers == {"Connection": "close"}


async def test_accepted_only_after_the_broker_acknowledged_with_key_and_headers() -> None:
    raw = Raw()
    reply = await webhook(raw).handle("web", signed(LEAD), chunks(LEAD))
    assert (reply.status, reply.body, reply.headers) == (202, {"status": "accepted"}, {})
    assert raw.sent == [
        (
            b"web:w-1",
            LEAD,
            [("leadloop-source", b"web"), ("received-at", NOW.isoformat().encode())],
        )
    ]


async def test_busy_is_429_and_a_failed_or_slow_broker_is_503_with_retry_after() -> None:
    with capture_logs() as logs:
        down = await webhook(Raw(fail=ConnectionError())).handle("web", signed(LEAD), chunks(LEAD))
    assert (down.status, down.body, down.headers) == (
        503,
        {"error": "unavailable"},
        {"Retry-After": "5"},
    )
    assert logs[-1] == {
        "event": "webhook_publish_failed",
        "log_level": "warning",
        "source": "web",
        "error": "ConnectionError",
        "bytes": len(LEAD),
        "in_flight": 0,
    }
    slow = Raw(delay=0.3)
    hook = webhook(slow, max_in_flight=1, publish_timeout_s=0.05)
    first = await hook.handle("web", signed(LEAD), chunks(LEAD))
    assert first.status == 503
    assert hook.in_flight == 1, "the timed-out send keeps running"
    busy = await hook.handle("web", signed(LEAD), chunks(LEAD))
    assert (busy.status, busy.body, busy.headers) == (429, {"error": "busy"}, {"Retry-After": "1"})
    await asyncio.sleep(0.4)
    assert hook.in_flight == 0
    assert len(slow.sent) == 1, "it arrived after all"


async def test_read_body_counts_what_arrives_and_may_have_no_timeout() -> None:
    assert await read_body(chunks(b"x" * 250), max_bytes=250) == b"x" * 250
    with pytest.raises(TooLarge):
        await read_body(chunks(b"x" * 251), max_bytes=250)
    with pytest.raises(TimeoutError):
        await read_body(chunks(b"x" * 300, pause=0.03), max_bytes=1000, timeout_s=0.05)
    assert len(await read_body(chunks(b"x" * 300, pause=0.01), max_bytes=1000)) == 300


def test_refusal_headers_are_only_those_asked_for() -> None:
    assert refusal(400, "bad").headers == {}
    assert refusal(503, "x", retry_after=60, close=True, realm="r").headers == {
        "Retry-After": "60",
        "Connection": "close",
        "WWW-Authenticate": "r",
    }


async def test_sends_retrieve_a_late_failure_and_free_the_slot() -> None:
    sends = Sends(max_in_flight=1, timeout_s=0.01)

    async def late_failure() -> None:
        await asyncio.sleep(0.05)
        raise ConnectionError

    with pytest.raises(TimeoutError):
        await sends.send(late_failure())
    assert sends.full
    await asyncio.sleep(0.1)
    assert (sends.in_flight, sends.full) == (0, False)
