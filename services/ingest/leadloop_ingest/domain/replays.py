"""Replay protection for signed webhook requests: which requests are "the same", and for
how long a second delivery of one must be refused.

A signature check says a request was signed by a holder of the secret, not that it is
being delivered for the first time: a captured request replays verbatim inside the
timestamp window (``leadloop``, HubSpot v3) or forever (``meta``, which signs no
timestamp; 简道云, whose signed timestamp has no window). So the webhook reserves each
verified request's *replay key* in a cache shared by every ingest worker before it
accepts anything, and refuses a key already reserved (409 ``replayed``).

- The key is SHA-256 over the endpoint's scope (``lead:<source>``, ``crm:<client>``,
  ``crm-hook:<vendor>:<target>``) and the signature header's value, normalised
  (stripped; hex lower-cased). For a valid signature that value is a MAC over the body
  (and timestamp), so one key per signed request; no body and no secret is kept.
- A reservation expires when a replay could no longer pass the signature check: the
  signed timestamp + the tolerance, for a scheme with one; else ``retention_s`` after
  ``now`` (default seven days), after which the leads' idempotency on
  (``source``, ``source_lead_id``) is what is left.

Pure: no I/O, time comes in as ``now``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

__all__ = [
    "DEFAULT_RETENTION_S",
    "REPLAYED",
    "Reservation",
    "reservation",
]

#: How long a request of a scheme without a signed timestamp is remembered.
DEFAULT_RETENTION_S: Final = 7 * 24 * 3600
#: The refusal's reason code (HTTP 409).
REPLAYED: Final = "replayed"


@dataclass(frozen=True, slots=True)
class Reservation:
    """One signed request's key in the replay cache and when it may be forgotten."""

    key: bytes
    scope: str
    #: When it was made; a release removes only the reservation made then.
    reserved_at: datetime
    expires_at: datetime


def reservation(
    *,
    scope: str,
    signature: str,
    signed_at: datetime | None,
    now: datetime,
    tolerance_s: int,
    retention_s: int = DEFAULT_RETENTION_S,
) -> Reservation:
    """The reservation of a request whose signature (header value ``signature``) was
    verified. ``signed_at`` is the signed timestamp, None for a scheme without one; the
    reservation then lasts ``retention_s`` from ``now``; else until the signed timestamp +
    the tolerance, the last moment a replay of it could verify."""
    normalised = signature.strip().lower()
    key = hashlib.sha256(scope.encode("utf-8") + b"\x00" + normalised.encode("utf-8")).digest()
    if signed_at is None:
        expires_at = now + timedelta(seconds=retention_s)
    else:
        # The window is inclusive (``|now - ts| <= tolerance``) and timestamps are whole
        # seconds: one second more, so that a replay at the window's last instant is held.
        expires_at = signed_at + timedelta(seconds=tolerance_s + 1)
    return Reservation(key=key, scope=scope, reserved_at=now, expires_at=expires_at)
