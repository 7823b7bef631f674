"""Webhook signatures: is this request body what the channel that shares our secret sent?

Two schemes, chosen per source:

- ``leadloop`` (the default): ``X-Leadloop-Timestamp: <unix seconds>`` and
  ``X-Leadloop-Signature: sha256=<hex>``, the MAC being
  HMAC-SHA256(secret, ``b"<timestamp>." + raw body``). The timestamp is covered by the
  MAC and must lie within ``tolerance_s`` of ``now`` in either direction, so a captured
  request cannot be replayed later and a sender's clock far in the future is refused.
- ``meta`` (Meta/Facebook lead ads style): ``X-Hub-Signature-256: sha256=<hex>`` =
  HMAC-SHA256(secret, raw body). There is no timestamp, so a captured request can be
  replayed verbatim; replay protection then rests on the idempotency of
  (``source``, ``source_lead_id``): a replayed lead is a duplicate and changes nothing.

The MAC is computed over the raw bytes as received, never over a decoded or
re-serialised body, so any encoding (Chinese names included) verifies as sent.
Digests are compared with ``hmac.compare_digest``. ``verify`` is total: whatever the
headers contain (wrong algorithm, non-hex, empty, non-ASCII), it returns a verdict and
never raises. Pure: no I/O, and time comes in as ``now``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "META_SIGNATURE",
    "SIGNATURE",
    "TIMESTAMP",
    "Failure",
    "Scheme",
    "Verdict",
    "sign_leadloop",
    "sign_meta",
    "verify",
]

#: Header names (HTTP header names are case-insensitive; ``verify`` matches them so).
TIMESTAMP = "X-Leadloop-Timestamp"
SIGNATURE = "X-Leadloop-Signature"
META_SIGNATURE = "X-Hub-Signature-256"

DEFAULT_TOLERANCE_S = 300

Scheme = Literal["leadloop", "meta"]

# ASCII only: ``str.isdigit`` and ``int()`` also accept other scripts' digits.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class Failure(StrEnum):
    """Why a request is not authentic; stable codes for responses and logs."""

    #: A header the scheme needs is absent or empty.
    MISSING_SIGNATURE = "missing_signature"
    #: Malformed header, wrong algorithm, or a MAC that does not match.
    BAD_SIGNATURE = "bad_signature"
    #: Correctly signed, but the timestamp is outside the tolerance window.
    STALE_TIMESTAMP = "stale_timestamp"
    #: No secret is configured for the source, so nothing it sends can be verified.
    UNKNOWN_SOURCE = "unknown_source"


@dataclass(frozen=True, slots=True)
class Verdict:
    reason: Failure | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


_OK = Verdict()


def verify(
    *,
    scheme: Scheme,
    secret: bytes | None,
    body: bytes,
    headers: Mapping[str, str],
    now: datetime,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> Verdict:
    """Whether ``body`` was signed with ``secret`` under ``scheme``. Never raises.

    ``now`` must be timezone-aware. The MAC is checked before the timestamp window, so
    ``stale_timestamp`` is only ever said to a sender who holds the secret (an honest
    sender with a skewed clock learns what is wrong; a forger learns nothing).
    """
    if not secret:
        return Verdict(Failure.UNKNOWN_SOURCE)
    lowered = {k.lower(): v for k, v in headers.items()}
    if scheme == "meta":
        signature = lowered.get(META_SIGNATURE.lower())
        if not signature:
            return Verdict(Failure.MISSING_SIGNATURE)
        return _OK if _matches(signature, _mac(secret, body)) else Verdict(Failure.BAD_SIGNATURE)
    timestamp = lowered.get(TIMESTAMP.lower())
    signature = lowered.get(SIGNATURE.lower())
    if not timestamp or not signature:
        return Verdict(Failure.MISSING_SIGNATURE)
    timestamp = timestamp.strip()
    if not _TIMESTAMP.fullmatch(timestamp):
        return Verdict(Failure.BAD_SIGNATURE)
    if not _matches(signature, _mac(secret, timestamp.encode("ascii") + b"." + body)):
        return Verdict(Failure.BAD_SIGNATURE)
    if abs(now.timestamp() - int(timestamp)) > tolerance_s:
        return Verdict(Failure.STALE_TIMESTAMP)
    return _OK


def sign_leadloop(secret: bytes, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers a sender adds under the ``leadloop`` scheme (clients, tests, simulator)."""
    mac = _mac(secret, f"{timestamp}.".encode() + body).hex()
    return {TIMESTAMP: str(timestamp), SIGNATURE: f"sha256={mac}"}


def sign_meta(secret: bytes, body: bytes) -> dict[str, str]:
    """The header a sender adds under the ``meta`` scheme."""
    return {META_SIGNATURE: f"sha256={_mac(secret, body).hex()}"}


def _mac(secret: bytes, message: bytes) -> bytes:
    return hmac.new(secret, message, hashlib.sha256).digest()


def _matches(header: str, expected: bytes) -> bool:
    """``sha256=<64 hex digits>`` naming ``expected``; anything else is simply no match."""
    algorithm, sep, digest = header.strip().partition("=")
    if not sep or algorithm.lower() != "sha256" or not _HEX_SHA256.fullmatch(digest):
        return False
    return hmac.compare_digest(bytes.fromhex(digest), expected)
