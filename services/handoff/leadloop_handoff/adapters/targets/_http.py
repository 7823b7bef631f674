"""What every target does with HTTP: send one request, and read a reply nobody vouches for.

Each target sends through an ``aiohttp.ClientSession`` and gives each request its own
``timeout_s`` (a total for connect, send and the whole reply). The session is either
handed in (the caller owns and closes it: tests) or made by a factory on the target's
first send, inside the running event loop where aiohttp requires it, and closed by the
target's ``aclose`` (the service: one session per target, its connector sized to the
target's window). A reply is read whole inside the request, so no connection is left
checked out. A request that gets no reply becomes an ``Attempt`` here, once, with a
stable code: ``timeout``, ``connect_error`` or ``network_error``. Reply bodies are parsed
defensively (a proxy's HTML error page is not JSON) and never copied into an attempt.
``HttpTarget`` is the part of a ``Target`` every vendor shares (config, session, clock,
what ``on_erase`` means).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, Protocol, TypeVar

import aiohttp

from leadloop.clock import Clock, SystemClock
from leadloop_handoff.domain.cards import Attempt

__all__ = [
    "HttpTarget",
    "Reply",
    "SessionFactory",
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

#: Makes a target's session; called on its first send, inside the running event loop.
SessionFactory = Callable[[], aiohttp.ClientSession]


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


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP reply, read whole: what the vendor modules read of it."""

    status_code: int
    #: Case-insensitive (aiohttp's ``CIMultiDictProxy``).
    headers: Mapping[str, str]
    content: bytes


def transport_attempt(exc: BaseException) -> Attempt:
    """No reply came: always worth another try; the code says which kind of silence.

    ``timeout``: the request's total timeout ran out (``asyncio.TimeoutError``, or one of
    aiohttp's ``ServerTimeoutError``s, which are ``TimeoutError`` too); ``connect_error``:
    no connection was made (refused, unreachable, DNS, TLS handshake); ``network_error``:
    the connection broke or the reply was not HTTP after the request went out.
    """
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return Attempt("retry", None, "timeout")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Attempt("retry", None, "connect_error")
    return Attempt("retry", None, "network_error")


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    timeout_s: float,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    content: bytes | None = None,
    form: Mapping[str, str] | None = None,
) -> Reply | Attempt:
    """One request with the target's timeout; a transport failure comes back as an Attempt.

    The body is ``json`` (a value, encoded compact and UTF-8 as is, ``application/json``
    unless ``headers`` say otherwise; None sends no body), ``content`` (bytes as given) or
    ``form`` (``application/x-www-form-urlencoded``). Redirects are not followed: a
    3xx is the CRM's answer.
    """
    sent_headers = dict(headers or {})
    data: bytes | Mapping[str, str] | None = content if content is not None else form
    if json is not None:
        data = _json_dumps(json).encode()
        if not any(k.lower() == "content-type" for k in sent_headers):
            sent_headers["Content-Type"] = "application/json"
    try:
        async with session.request(
            method,
            url,
            data=data,
            headers=sent_headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=False,
        ) as response:
            return Reply(response.status, response.headers, await response.read())
    except (TimeoutError, aiohttp.ClientError) as exc:
        return transport_attempt(exc)


def _json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def json_body(response: Reply) -> Any:
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


def generic_attempt(response: Reply, now: datetime) -> Attempt:
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
    """The part of a ``Target`` every CRM shares: its config, its HTTP session, a clock,
    and what ``on_erase`` means. A vendor module adds ``upsert`` and the two ways to
    erase (``_delete``, ``_anonymise``) that its config can ask for.

    ``client`` is a session (the caller's: ``aclose`` leaves it open) or a
    ``SessionFactory`` (the session is made on the first send and ``aclose`` closes it).
    """

    def __init__(
        self,
        config: SettingsT,
        client: aiohttp.ClientSession | SessionFactory,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None
        self._make_session: SessionFactory | None = None
        if isinstance(client, aiohttp.ClientSession):
            self._session = client
        else:
            self._make_session = client
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
        """Close the session this target made; a session handed in is its owner's."""
        if self._make_session is not None and self._session is not None:
            await self._session.close()

    async def _delete(self, lead_id: str) -> Attempt:
        raise NotImplementedError(f"{type(self).__name__} cannot delete")

    async def _anonymise(self, lead_id: str) -> Attempt:
        raise NotImplementedError(f"{type(self).__name__} cannot anonymise")

    async def _send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        form: Mapping[str, str] | None = None,
    ) -> Reply | Attempt:
        """``send`` on this target's session with this target's timeout."""
        if self._session is None:
            assert self._make_session is not None  # one of the two is always set
            self._session = self._make_session()
        return await send(
            self._session,
            method,
            url,
            timeout_s=self.config.timeout_s,
            headers=headers,
            json=json,
            content=content,
            form=form,
        )
