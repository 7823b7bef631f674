"""Who may call the read API, with which scopes, and how often (no I/O, no wall clock).

API clients are configured in ``config/api-clients.yaml``. The file holds the SHA-256 of
each client's bearer token, never the token itself, so it can live in version control:
whoever reads it still cannot call the API. A token is checked by hashing what the
caller sent and comparing digests in constant time against every configured client.

Scopes: ``leads:read-summary`` shows a lead without its contact details;
``leads:read-contact`` also shows them (it implies the summary). A client listed with no
scopes authenticates and is refused with 403 (a way to suspend a client without
deleting its entry).

Each client has a token bucket of ``burst`` requests refilled at ``rate_per_minute``;
``now`` is monotonic seconds handed in by the caller. Requests without a valid token are
not rate-limited per client (they name none); guessing a 256-bit token is not a threat
a rate limit would change.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CONTACT",
    "READ_SCOPES",
    "SCOPES",
    "SUMMARY",
    "Client",
    "ClientEntry",
    "Clients",
    "ClientsFile",
    "RateLimiter",
    "Refusal",
    "authorize",
    "bearer_token",
    "token_digest",
]

SUMMARY: Final = "leads:read-summary"
CONTACT: Final = "leads:read-contact"
SCOPES: Final = frozenset({SUMMARY, CONTACT})
#: Any one of these lets a client read a lead (the view depends on which it holds).
READ_SCOPES: Final = SCOPES

REALM: Final = "leadloop"
#: Longest token accepted before hashing: ``token_urlsafe(32)`` is 43 characters.
MAX_TOKEN_CHARS: Final = 512
# RFC 6750 b64token.
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

ClientId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]


class ClientEntry(BaseModel):
    """One client of ``config/api-clients.yaml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_id: ClientId
    scopes: tuple[str, ...] = Field(max_length=len(SCOPES))
    #: Lowercase hex SHA-256 of the bearer token (``python -m leadloop_handoff.tokens``).
    token_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    rate_per_minute: Annotated[int, Field(ge=1, le=100_000)] = 60
    #: Bucket size: requests allowed at once after a quiet spell; default ten seconds'
    #: worth of the rate (at least 1), so a client cannot spend its minute in a burst.
    burst: Annotated[int, Field(ge=1, le=100_000)] | None = None

    @model_validator(mode="after")
    def _known_scopes(self) -> ClientEntry:
        unknown = sorted(set(self.scopes) - SCOPES)
        if unknown:
            raise ValueError(f"unknown scopes {unknown}; known: {sorted(SCOPES)}")
        return self


class ClientsFile(BaseModel):
    """The whole file: ``clients: [...]`` (an empty list: nobody may read)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    clients: tuple[ClientEntry, ...]

    @model_validator(mode="after")
    def _unique(self) -> ClientsFile:
        ids = [c.client_id for c in self.clients]
        if len(set(ids)) != len(ids):
            raise ValueError("client_id values must be unique")
        digests = [c.token_sha256 for c in self.clients]
        if len(set(digests)) != len(digests):
            # One token must name one client, or reads would be audited to the wrong one.
            raise ValueError("token_sha256 values must be unique")
        return self


def token_digest(token: str) -> str:
    """The ``token_sha256`` of a token (lowercase hex)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    scopes: frozenset[str]
    rate_per_minute: int
    burst: int

    @property
    def reads_contact(self) -> bool:
        return CONTACT in self.scopes


class RateLimiter:
    """A token bucket that admits or refuses: ``capacity`` tokens, refilled continuously
    at ``refill_per_s``, one per admitted request.

    Unlike ``pacing.TokenBucket`` (which paces our own sends and runs into debt), a
    refused request takes nothing, so a client that keeps calling while refused gets in
    again as soon as its rate allows. In any window of ``t`` seconds at most
    ``capacity + refill_per_s * t`` requests are granted. A ``now`` earlier than the
    last one seen (not expected of a monotonic clock) refills nothing instead of failing.
    """

    __slots__ = ("_last", "_tokens", "capacity", "refill_per_s")

    def __init__(self, capacity: int, refill_per_s: float, now: float) -> None:
        if capacity < 1 or refill_per_s <= 0:
            raise ValueError("a rate limiter needs capacity >= 1 and a positive refill rate")
        self.capacity = capacity
        self.refill_per_s = refill_per_s
        self._tokens = float(capacity)
        self._last = now

    def take(self, now: float) -> float:
        """0.0 when a token was taken; else the seconds until one is available."""
        if now > self._last:
            self._tokens = min(
                float(self.capacity), self._tokens + (now - self._last) * self.refill_per_s
            )
            self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.refill_per_s


class Clients:
    """The configured clients and their buckets (one bucket per configured client)."""

    def __init__(self, entries: Iterable[ClientEntry]) -> None:
        self._by_digest: list[tuple[bytes, Client]] = []
        for e in entries:
            burst = e.burst if e.burst is not None else math.ceil(e.rate_per_minute / 6)
            client = Client(e.client_id, frozenset(e.scopes), e.rate_per_minute, burst)
            self._by_digest.append((bytes.fromhex(e.token_sha256), client))
        self._limiters: dict[str, RateLimiter] = {}

    @classmethod
    def from_file(cls, file: ClientsFile) -> Clients:
        return cls(file.clients)

    def __len__(self) -> int:
        return len(self._by_digest)

    def authenticate(self, token: str) -> Client | None:
        """The client whose token this is, else None. Every configured digest is
        compared (no early exit), each comparison in constant time."""
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        found: Client | None = None
        for expected, client in self._by_digest:
            if hmac.compare_digest(digest, expected):
                found = client
        return found

    def take(self, client: Client, now: float) -> float:
        """Spend one of the client's requests: 0.0 if allowed, else seconds to wait."""
        limiter = self._limiters.get(client.client_id)
        if limiter is None:
            limiter = RateLimiter(client.burst, client.rate_per_minute / 60.0, now)
            self._limiters[client.client_id] = limiter
        return limiter.take(now)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request the API refuses; ``code`` is the body's ``error``; ``client_id`` names
    the client once its token was recognised (429, 403), for the logs."""

    status: int
    code: str
    headers: Mapping[str, str] = field(default_factory=dict)
    client_id: str | None = None


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer`` header ('' when malformed), else None.

    Header names are matched case-insensitively whatever mapping is passed in.
    """
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    if len(token) > MAX_TOKEN_CHARS or _TOKEN.fullmatch(token) is None:
        return ""
    return token


def _challenge(error: str | None = None) -> dict[str, str]:
    # RFC 6750 §3: a request without credentials gets the bare challenge, no error code.
    value = f'Bearer realm="{REALM}"'
    if error is not None:
        value += f', error="{error}"'
    if error == "insufficient_scope":
        value += f', scope="{" ".join(sorted(READ_SCOPES))}"'
    return {"WWW-Authenticate": value}


def authorize(
    headers: Mapping[str, str],
    clients: Clients,
    now: float,
    *,
    accept: frozenset[str] = READ_SCOPES,
) -> Client | Refusal:
    """Decide whether a request may go on, and as whom.

    401 ``missing_token`` (no bearer credentials) or ``invalid_token`` (malformed or
    unknown); 429 ``rate_limited`` with ``Retry-After`` (whole seconds, at least 1) when
    the client's bucket is empty; 403 ``insufficient_scope`` when the client holds none
    of ``accept``. Every authenticated request spends a token, also a refused one.
    """
    token = bearer_token(headers)
    if token is None:
        return Refusal(401, "missing_token", _challenge())
    client = clients.authenticate(token) if token else None
    if client is None:
        return Refusal(401, "invalid_token", _challenge("invalid_token"))
    wait = clients.take(client, now)
    if wait > 0:
        retry_after = {"Retry-After": str(max(1, math.ceil(wait)))}
        return Refusal(429, "rate_limited", retry_after, client.client_id)
    if not client.scopes & accept:
        challenge = _challenge("insufficient_scope")
        return Refusal(403, "insufficient_scope", challenge, client.client_id)
    return client
