"""What every target does with HTTP: send one request, and read a reply nobody vouches for.

Targets share the process's ``httpx.AsyncClient`` (the composition root owns it and
closes it) and give each request the target's own ``timeout_s``. A request that gets no
reply becomes an ``Attempt`` here, once, with a stable code: ``timeout``,
``connect_error`` or ``network_error``. Reply bodies are parsed defensively (a proxy's
HTML error page is not JSON) and never copied into an attempt. ``HttpTarget`` is the part
of a ``Target`` every vendor shares (config, client, clock, what ``on_erase`` means).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, Protocol, TypeVar

import httpx

from leadloop.clock import Clock, SystemClock
from leadloop_handoff.domain.cards import Attempt

__all__ = [
    "HttpTarget",
    "TargetSettings",
    "delivered",
    "first_error_code",
    "generic_attempt",
    "json_body",
    "parse_retry_after",
    "refused",
    "send",
    "transport_attempt",
]

#: The longest wait a Retry-After may ask for; anything longer is treated as this.
MAX_RETRY_AFTER_S = 24 * 3600.0


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    RFC 9110 §10.2.3 allows both forms. A date in the past means "now" (0); anything
    unparseable is no hint at all (None), never an error. ``now`` must be aware.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return min(float(text), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT by definition
        return None
    return min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER_S)


def transport_attempt(exc: httpx.TransportError) -> Attempt:
    """No reply came: always worth another try; the code says which kind of silence."""
    if isinstance(exc, httpx.TimeoutException):
        return Attempt("retry", None, "timeout")
    if isinstance(exc, httpx.ConnectError):
        return Attempt("retry", None, "connect_error")
    return Attempt("retry", None, "network_error")


async def send(
    client: httpx.AsyncClient, method: str, url: str, *, timeout_s: float, **kwargs: Any
) -> httpx.Response | Attempt:
    """One request with the target's timeout; a transport failure comes back as an Attempt."""
    try:
        return await client.request(method, url, timeout=timeout_s, **kwargs)
    except httpx.TransportError as exc:
        return transport_attempt(exc)


def json_body(response: httpx.Response) -> Any:
    """The reply's JSON value, or None when it has none (empty, HTML, truncated)."""
    if not response.content:
        return None
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None


def first_error_code(body: Any, key: str) -> str | None:
    """``body[key]`` or ``body[0][key]`` when it is a short token (vendors' error codes).

    Only identifier-like values are returned: an attempt code is a metric label and a
    dead-letter field, never free text that could carry personal data.
    """
    candidate: Any = None
    if isinstance(body, dict):
        candidate = body.get(key)
    elif isinstance(body, list) and body and isinstance(body[0], dict):
        candidate = body[0].get(key)
    if isinstance(candidate, int) and not isinstance(candidate, bool):
        return str(candidate)
    token = isinstance(candidate, str) and 0 < len(candidate) <= 64
    if token and all(c.isascii() and (c.isalnum() or c in "_-.") for c in candidate):
        return str(candidate)
    return None


def delivered(status: int, crm_id: Any = None) -> Attempt:
    """Delivered ``ok``; ``crm_id`` is kept only when the reply gave a string."""
    return Attempt("delivered", status, "ok", crm_id=crm_id if isinstance(crm_id, str) else None)


def refused(status: int, code: str | None = None) -> Attempt:
    """The CRM said no: failed with the vendor's ``code``, else ``http_<status>``."""
    return Attempt("failed", status, code or f"http_{status}")


def generic_attempt(response: httpx.Response, now: datetime) -> Attempt:
    """The plain HTTP reading: 2xx delivered; 429 and 5xx retry; any other status failed."""
    status = response.status_code
    if 200 <= status < 300:
        return delivered(status)
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
        return Attempt("retry", status, f"http_{status}", retry_after)
    return refused(status)


class TargetSettings(Protocol):
    """What ``HttpTarget`` reads of a target's config (every model in ``config.py``)."""

    @property
    def name(self) -> str: ...

    @property
    def timeout_s(self) -> float: ...

    @property
    def pool(self) -> Mapping[str, str]: ...

    @property
    def on_erase(self) -> str: ...


SettingsT = TypeVar("SettingsT", bound=TargetSettings)


class HttpTarget(Generic[SettingsT]):
    """The part of a ``Target`` every CRM shares: its config, the shared client, a clock,
    and what ``on_erase`` means. A vendor module adds ``upsert`` and the two ways to
    erase (``_delete``, ``_anonymise``) that its config can ask for."""

    def __init__(
        self, config: SettingsT, client: httpx.AsyncClient, clock: Clock | None = None
    ) -> None:
        self.config = config
        self._client = client
        self._clock = clock or SystemClock()

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def supports_pool(self) -> bool:
        return bool(self.config.pool)

    @property
    def supports_erase(self) -> bool:
        return self.config.on_erase != "none"

    async def erase(self, lead_id: str) -> Attempt:
        if self.config.on_erase == "delete":
            return await self._delete(lead_id)
        if self.config.on_erase == "anonymise":
            return await self._anonymise(lead_id)
        return Attempt("delivered", None, "erase_disabled")

    async def aclose(self) -> None:
        """Nothing to close: the HTTP client belongs to the composition root."""

    async def _delete(self, lead_id: str) -> Attempt:
        raise NotImplementedError(f"{type(self).__name__} cannot delete")

    async def _anonymise(self, lead_id: str) -> Attempt:
        raise NotImplementedError(f"{type(self).__name__} cannot anonymise")

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response | Attempt:
        """``send`` on the shared client with this target's timeout."""
        return await send(self._client, method, url, timeout_s=self.config.timeout_s, **kwargs)
