"""Identity keys for person-level dedupe: keyed HMAC-SHA256 with a secret pepper.

A plain hash of an email can be reversed by hashing a list of known addresses; a keyed
HMAC cannot without the pepper, which lives only in the service's environment.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["identity_key"]


def identity_key(pepper: bytes, kind: str, normalised_value: str | None) -> str | None:
    if not normalised_value:
        return None
    mac = hmac.new(pepper, f"{kind}:{normalised_value}".encode(), hashlib.sha256)
    return mac.hexdigest()
