"""HTTP plumbing shared by the chat channels: one call, errors mapped to `Sent`.

Every request goes through the `httpx.AsyncClient` the composition root hands in, so
pooling, proxies and TLS settings are decided once. Transport trouble is transient by
nature (``timeout``, ``connect_error``, ``transport_error``: retry); an HTTP status is
judged by `status_outcome` unless a vendor needs to read the body of a non-2xx reply
first. Exception texts are never copied into a code: they may contain the URL, and the
URL of a webhook is its secret.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from .base import Sent, failed, retry

__all__ = [
    "int_field",
    "json_object",
    "parse_retry_after",
    "send_http",
    "status_outcome",
    "truncate_utf8",
]


async def send_http(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    timeout_s: float,
    **kwargs: Any,
) -> httpx.Response | Sent:
    """Perform one request; a transport failure comes back as a retry `Sent`."""
    try:
        return await client.request(method, url, timeout=timeout_s, **kwargs)
    except httpx.TimeoutException:
        return retry("timeout")
    except httpx.ConnectError:
        return retry("connect_error")
    except httpx.TransportError:
        return retry("transport_error")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header; the HTTP-date form is not used by these vendors."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(seconds, 0.0)


def status_outcome(response: httpx.Response) -> Sent | None:
    """The outcome an HTTP status decides on its own, or None for a 2xx reply."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 429:
        return retry("ratelimited", after)
    if status >= 500 or status == 408:
        return retry(f"http_{status}", after)
    return failed(f"http_{status}")


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The reply body as a JSON object, or None when it is not one."""
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def int_field(body: dict[str, Any], name: str) -> int | None:
    """An integer code from a vendor reply; booleans and strings are not codes."""
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def truncate_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes on a character boundary, marked with …."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    marker = "…".encode()
    return raw[: limit - len(marker)].decode(errors="ignore") + "…"
