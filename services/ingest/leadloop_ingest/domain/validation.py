"""From raw bytes to a normalised lead or a rejection with a stable reason code.

``validate`` is total: whatever bytes arrive, it returns a ``ValidLead`` or a
``Rejection`` and never raises, so a poison record can never block a partition.
Rejection details name fields and error kinds only, never the submitted values,
because those may be personal data.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import ValidationError

from leadloop.events import RawLead, RejectReason
from leadloop_ingest.domain.channels import AdapterError, Channels, map_payload

__all__ = [
    "Limits",
    "NormalisedContact",
    "RejectReason",
    "Rejection",
    "ValidLead",
    "normalise_email",
    "normalise_name",
    "normalise_phone",
    "validate",
]


@dataclass(frozen=True, slots=True)
class Limits:
    max_record_bytes: int = 64 * 1024
    #: Accepted channel ids; empty means any syntactically valid source.
    sources: frozenset[str] = frozenset()
    #: Region used to read phone numbers written without a country code, per source.
    default_phone_region: dict[str, str] = field(default_factory=dict)
    #: Channel adapters by source (config/channels.yaml); empty: contract shape only.
    channels: Channels = field(default_factory=Channels)


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectReason
    detail: str
    #: The source when it could be read (for per-source counting), else None.
    source: str | None = None


@dataclass(frozen=True, slots=True)
class NormalisedContact:
    email: str | None
    phone: str | None
    name: str | None


@dataclass(frozen=True, slots=True)
class ValidLead:
    raw: RawLead
    contact: NormalisedContact


def validate(data: bytes, limits: Limits, source_hint: str | None = None) -> ValidLead | Rejection:
    """Decide what a ``leads.raw`` record is. Never raises.

    ``source_hint`` is the channel as the transport names it (the ``leadloop-source``
    header the webhook sets); a channel-native shape is mapped to the contract shape
    by that channel's adapter before it is judged.
    """
    if len(data) > limits.max_record_bytes:
        return Rejection(
            RejectReason.TOO_LARGE,
            f"record is {len(data)} bytes; the limit is {limits.max_record_bytes}",
        )
    try:
        decoded: Any = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return Rejection(RejectReason.INVALID_JSON, f"not UTF-8 (byte {exc.start})")
    except (ValueError, RecursionError) as exc:  # ValueError: also an over-long int literal
        where = (
            f" at line {exc.lineno} column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        return Rejection(RejectReason.INVALID_JSON, f"not valid JSON{where}")
    hint = _safe_source(source_hint)  # a header is untrusted text
    try:
        decoded = map_payload(limits.channels, hint, decoded)
    except AdapterError as exc:
        return Rejection(RejectReason.SCHEMA_VIOLATION, exc.detail, hint)
    if not isinstance(decoded, dict):
        return Rejection(
            RejectReason.SCHEMA_VIOLATION, f"expected a JSON object, got {type(decoded).__name__}"
        )
    source = decoded.get("source") if isinstance(decoded.get("source"), str) else None
    try:
        raw = RawLead.model_validate(decoded)
    except ValidationError as exc:
        return Rejection(RejectReason.SCHEMA_VIOLATION, _describe(exc), _safe_source(source))
    except (RecursionError, ValueError) as exc:  # pathological nesting
        return Rejection(RejectReason.SCHEMA_VIOLATION, type(exc).__name__, _safe_source(source))
    # JSON text carries U+0000 only as the escape \u0000 (strict decoding refuses the raw
    # byte, and the channel mappings only move values), so most records skip the walk.
    if b"\\u0000" in data and _has_nul(decoded):
        # PostgreSQL text cannot hold U+0000; refusing it here keeps a batch write from
        # failing on it (which would hold the partition).
        return Rejection(
            RejectReason.SCHEMA_VIOLATION, "text contains the NUL character", raw.source
        )
    if limits.sources and raw.source not in limits.sources:
        return Rejection(
            RejectReason.UNKNOWN_SOURCE, "source is not a configured channel", raw.source
        )
    if not raw.email and not raw.phone:
        return Rejection(
            RejectReason.MISSING_CONTACT, "at least one of email or phone is required", raw.source
        )
    email = None
    if raw.email:
        email = normalise_email(raw.email)
        if email is None:
            return Rejection(RejectReason.INVALID_EMAIL, "email is not a valid address", raw.source)
    phone = None
    if raw.phone:
        region = raw.country or limits.default_phone_region.get(raw.source)
        phone = normalise_phone(raw.phone, region)
        if phone is None:
            return Rejection(
                RejectReason.INVALID_PHONE,
                "phone is not a valid number"
                + ("" if region else " (no country code and no default region)"),
                raw.source,
            )
    contact = NormalisedContact(email=email, phone=phone, name=normalise_name(raw.name))
    return ValidLead(raw=raw, contact=contact)


def normalise_email(value: str) -> str | None:
    """A syntactically valid address, lower-cased; None if invalid.

    Deliverability (DNS) is not checked: that would be I/O in a pure function and would
    reject leads whenever the resolver is slow.
    """
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return None
    return result.normalized.lower()


def normalise_phone(value: str, region: str | None) -> str | None:
    """E.164 form, or None when the number is not valid for its region."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_name(value: str | None) -> str | None:
    """NFC-normalised, trimmed, inner whitespace collapsed; None when empty."""
    if value is None:
        return None
    collapsed = " ".join(unicodedata.normalize("NFC", value).split())
    return collapsed or None


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _safe_source(source: str | None) -> str | None:
    # Only a syntactically valid channel id may be used as a label or header.
    if source is None:
        return None
    try:
        return RawLead.model_validate({"source": source, "source_lead_id": "x"}).source
    except ValidationError:
        return None


def _describe(exc: ValidationError) -> str:
    """Field locations and error kinds only: the input may be personal data."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False, include_context=False)[:5]:
        # Keys inside ``attributes`` are chosen by the sender and could be anything, so
        # only the model's own field names are echoed.
        loc = (
            ".".join(
                str(p) if isinstance(p, int) or p in RawLead.model_fields else "<key>"
                for p in err["loc"]
            )
            or "(record)"
        )
        parts.append(f"{loc}: {err['type']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
