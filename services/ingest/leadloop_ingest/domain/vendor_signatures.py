"""Vendor webhook signatures: HubSpot's v3 request signature and 简道云's data-push signature.

- **HubSpot v3** (developers.hubspot.com/docs/api/webhooks/validating-requests):
  ``X-HubSpot-Signature-v3`` = base64(HMAC-SHA256(app client secret,
  utf8(method + uri + raw body + timestamp))), ``X-HubSpot-Request-Timestamp`` in epoch
  milliseconds. A request whose timestamp is more than five minutes away from ``now``
  is refused. ``uri`` is the full URI HubSpot called (scheme, host, path, query) with
  the escapes ``%3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B`` decoded, as the docs
  say. The value is bare base64 (no ``sha256=`` prefix).
- **简道云 数据推送** (hc.jiandaoyun.com/open/11507; jiandaoyun/webhook-demo-python):
  ``X-JDY-Signature`` = hex(SHA-1(utf8("{nonce}:{payload}:{secret}:{timestamp}"))),
  ``nonce`` and ``timestamp`` from the query string, ``payload`` the raw body. The docs
  give no freshness window and no retry schedule, so no window is enforced here: a
  captured push verifies forever, and the endpoint's replay cache (``domain.replays``)
  remembers it for the retention instead of a window.

Both checks are pure and total: whatever the headers hold they return a
:class:`~leadloop_ingest.domain.signatures.Failure` or None, never raise; digests are
compared with ``hmac.compare_digest``; the MAC is checked before the timestamp window
(only a holder of the secret learns that the clock is off).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

from leadloop_ingest.domain.signatures import Failure

__all__ = [
    "HUBSPOT_SIGNATURE",
    "HUBSPOT_TIMESTAMP",
    "HUBSPOT_TOLERANCE_S",
    "JDY_SIGNATURE",
    "hubspot_replay_parts",
    "hubspot_uri",
    "verify_hubspot_v3",
    "verify_jiandaoyun",
]

HUBSPOT_SIGNATURE: Final = "X-HubSpot-Signature-v3"
HUBSPOT_TIMESTAMP: Final = "X-HubSpot-Request-Timestamp"
JDY_SIGNATURE: Final = "X-JDY-Signature"
#: HubSpot: "reject the request if the timestamp is older than 5 minutes".
HUBSPOT_TOLERANCE_S: Final = 300

# The percent-escapes HubSpot's docs list as decoded before signing (case-insensitive hex).
_HUBSPOT_ESCAPES: Final = re.compile(r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)", re.IGNORECASE)
_MILLIS = re.compile(r"[0-9]{1,15}")
_HEX_SHA1 = re.compile(r"[0-9a-fA-F]{40}")
_B64_SHA256 = re.compile(r"[A-Za-z0-9+/]{43}=")


def hubspot_uri(uri: str) -> str:
    """The URI as HubSpot signs it: the listed escapes decoded, everything else as is."""
    return _HUBSPOT_ESCAPES.sub(lambda m: bytes.fromhex(m.group(1)).decode("ascii"), uri)


def verify_hubspot_v3(
    *,
    secret: bytes,
    method: str,
    uri: str,
    body: bytes,
    headers: Mapping[str, str],
    now: datetime,
    tolerance_s: int = HUBSPOT_TOLERANCE_S,
) -> Failure | None:
    """None when ``body`` is what HubSpot signed with ``secret`` for ``method uri``."""
    if not secret:
        return Failure.UNKNOWN_SOURCE
    lowered = {k.lower(): v for k, v in headers.items()}
    signature = lowered.get(HUBSPOT_SIGNATURE.lower(), "").strip()
    timestamp = lowered.get(HUBSPOT_TIMESTAMP.lower(), "").strip()
    if not signature or not timestamp:
        return Failure.MISSING_SIGNATURE
    if not _MILLIS.fullmatch(timestamp) or not _B64_SHA256.fullmatch(signature):
        return Failure.BAD_SIGNATURE
    try:
        given = base64.b64decode(signature, validate=True)
        message = (method.upper() + hubspot_uri(uri)).encode("utf-8") + body + timestamp.encode()
    except (binascii.Error, UnicodeEncodeError):  # lone surrogates in a URI cannot be signed
        return Failure.BAD_SIGNATURE
    expected = hmac.new(secret, message, hashlib.sha256).digest()
    if not hmac.compare_digest(given, expected):
        return Failure.BAD_SIGNATURE
    if abs(now.timestamp() * 1000 - int(timestamp)) > tolerance_s * 1000:
        return Failure.STALE_TIMESTAMP
    return None


def hubspot_replay_parts(headers: Mapping[str, str]) -> tuple[str, datetime]:
    """The signature and the signed time of a request ``verify_hubspot_v3`` passed, for its
    replay key (``domain.replays``); raises on headers that did not verify.

    The signature comes back in canonical base64: its last character carries two bits
    the digest does not use and ``b64decode`` ignores, so four spellings of one signature
    verify, and a replay re-spelled that way would otherwise get a key of its own.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    given = base64.b64decode(lowered[HUBSPOT_SIGNATURE.lower()].strip(), validate=True)
    millis = int(lowered[HUBSPOT_TIMESTAMP.lower()].strip())
    return base64.b64encode(given).decode("ascii"), datetime.fromtimestamp(millis / 1000, UTC)


def verify_jiandaoyun(
    *,
    secret: bytes,
    body: bytes,
    nonce: str | None,
    timestamp: str | None,
    headers: Mapping[str, str],
) -> Failure | None:
    """None when ``X-JDY-Signature`` is SHA-1 of ``nonce:body:secret:timestamp``."""
    if not secret:
        return Failure.UNKNOWN_SOURCE
    lowered = {k.lower(): v for k, v in headers.items()}
    signature = lowered.get(JDY_SIGNATURE.lower(), "").strip()
    if not signature or nonce is None or timestamp is None:
        return Failure.MISSING_SIGNATURE
    if not _HEX_SHA1.fullmatch(signature):
        return Failure.BAD_SIGNATURE
    try:
        content = b":".join([nonce.encode("utf-8"), body, secret, timestamp.encode("utf-8")])
    except UnicodeEncodeError:
        return Failure.BAD_SIGNATURE
    # SHA-1 is 简道云's documented algorithm, not our choice; it is keyed by the secret.
    expected = hashlib.sha1(content).digest()  # noqa: S324
    if hmac.compare_digest(bytes.fromhex(signature), expected):
        return None
    return Failure.BAD_SIGNATURE
