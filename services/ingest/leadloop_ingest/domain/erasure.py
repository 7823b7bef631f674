"""Erasure of a person's data: who the request names, what is personal, what to tell Kafka.

A request names a person by email and/or phone, normalised exactly as ingest
normalises them, so the identity keys (keyed HMACs) it derives are the ones stored
with the person's leads. The erasure record keeps keyed HMACs of another domain
(``erasure:email``, ``erasure:phone``): with the pepper an auditor can confirm that a
given address was erased; the record matches no dedupe key and names nobody.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from leadloop.topics import TopicSpec
from leadloop_ingest.domain.identity import identity_key
from leadloop_ingest.domain.validation import normalise_email, normalise_phone

__all__ = [
    "ERASED_LEAD_COLUMNS",
    "PERSONAL_PAYLOAD_KEYS",
    "ErasureCounts",
    "ErasureSubject",
    "InvalidSubject",
    "erasure_keys_of",
    "subject_for",
    "subjects_from_lines",
    "tombstone_topics",
]

#: Columns of ``leads`` that hold or point at the person: set to NULL (attributes to
#: ``{}``). What stays is the lead's non-personal facts: ids, source, routing
#: attributes (the fields leads.accepted carries), score, priority, owner, stage, times.
ERASED_LEAD_COLUMNS = (
    "email",
    "phone",
    "name",
    "company",
    "title",
    "message",
    "attributes",
    "email_key",
    "phone_key",
)

#: Keys of a ``lead_merges`` payload that hold the merged record's personal data.
PERSONAL_PAYLOAD_KEYS = ("email", "phone", "name", "company", "title", "message", "attributes")

#: Topic keys that identify a lead, and so the person behind it.
_PERSON_KEYS = frozenset({"lead_id"})


class InvalidSubject(ValueError):
    """The request cannot name anyone; the message never repeats the value."""


@dataclass(frozen=True, slots=True)
class ErasureSubject:
    """The person, as ingest stores them: normalised email and/or E.164 phone."""

    email: str | None
    phone: str | None

    def lookup_keys(self, pepper: bytes) -> list[str]:
        """The identity keys stored with the person's leads (sorted: lock order)."""
        keys = (
            identity_key(pepper, "email", self.email),
            identity_key(pepper, "phone", self.phone),
        )
        return sorted(k for k in keys if k is not None)

    def record_keys(self, pepper: bytes) -> tuple[str | None, str | None]:
        """Keyed HMACs for the erasure record (email, phone), of their own domain."""
        return (
            identity_key(pepper, "erasure:email", self.email),
            identity_key(pepper, "erasure:phone", self.phone),
        )


def subject_for(email: str | None, phone: str | None, region: str | None = None) -> ErasureSubject:
    """Normalise the request like ingest does; raise ``InvalidSubject`` when it names
    nobody. A phone without a country code needs ``region`` (ISO 3166 alpha-2), the
    region ingest would have read it in (the lead's country or the channel's default)."""
    # Surrounding whitespace is stripped, as RawLead strips it before ingest normalises.
    email = email.strip() if email else None
    phone = phone.strip() if phone else None
    if not email and not phone:
        raise InvalidSubject("give an email, a phone or both")
    normal_email = None
    if email:
        normal_email = normalise_email(email)
        if normal_email is None:
            raise InvalidSubject("the email is not a valid address")
    normal_phone = None
    if phone:
        normal_phone = normalise_phone(phone, region.upper() if region else None)
        if normal_phone is None:
            raise InvalidSubject(
                "the phone is not a valid number"
                + ("" if region else " (without a country code, give a region, e.g. region=CN)")
            )
    return ErasureSubject(email=normal_email, phone=normal_phone)


_FIELDS = frozenset({"email", "phone", "region"})


def subjects_from_lines(
    lines: Iterable[str], default_region: str | None = None
) -> list[ErasureSubject]:
    """The people an erasure file names, one a line, in order.

    A line is ``email=...``, ``phone=...`` and/or ``region=CN``, separated by commas
    (``email=a@example.com, phone=+86 139 4417 2288``); a bare value is an email when
    it holds ``@``, else a phone. Blank lines and lines starting with ``#`` are skipped.
    ``default_region`` applies to phones of lines without ``region=``. Raises
    ``InvalidSubject`` naming the line number and the problem, never the value, and
    before anyone is erased: a file is taken whole or not at all.
    """
    subjects: list[ErasureSubject] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        fields: dict[str, str] = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            name, eq, value = part.partition("=")
            if not eq:
                name, value = ("email" if "@" in part else "phone"), part
            name = name.strip().lower()
            if name not in _FIELDS:
                raise InvalidSubject(f"line {number}: unknown field (use email=, phone=, region=)")
            if name in fields:
                raise InvalidSubject(f"line {number}: {name} given twice")
            fields[name] = value.strip()
        try:
            subjects.append(
                subject_for(
                    fields.get("email"),
                    fields.get("phone"),
                    fields.get("region") or default_region,
                )
            )
        except InvalidSubject as exc:
            raise InvalidSubject(f"line {number}: {exc}") from None
    if not subjects:
        raise InvalidSubject("the input names nobody (one person a line: email=..., phone=...)")
    return subjects


def tombstone_topics(registry: Iterable[TopicSpec]) -> list[str]:
    """Compacted topics keyed by a lead: an erased lead's key gets a tombstone there.

    In the project's registry there is none (the only compacted topic, ``crm.reps``,
    is keyed by rep_id and carries no lead's data); the erasure records that it wrote
    no tombstone, and writes them as soon as such a topic is registered.
    """
    return sorted(
        spec.name
        for spec in registry
        if spec.cleanup_policy == "compact" and spec.key in _PERSON_KEYS
    )


@dataclass(slots=True)
class ErasureCounts:
    """What an erasure changed, in counts only."""

    leads: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    tombstones: int = 0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


#: Field names (lower-cased, any depth) whose string values are taken for a phone when a
#: raw record is checked against the erasures: the contract's name and the channels'
#: native ones (WeChat ``purePhoneNumber``, Meta ``field_data`` entries).
_PHONE_HINTS = ("phone", "mobile", "tel")


def erasure_keys_of(value: bytes, pepper: bytes, region: str | None) -> set[str]:
    """The erasure-record keys (``ErasureSubject.record_keys``) of every email and phone
    a raw record (JSON, in any channel's shape) holds, normalised as ingest normalises
    them; a phone without a country code is read in the record's ``country`` or else
    ``region``. Erase can only name a valid address or number, so values that do not
    normalise match no erasure and are skipped. Total: bytes that are not JSON hold
    no keys."""
    try:
        decoded: Any = json.loads(value.decode("utf-8"))
    except (ValueError, RecursionError):
        return set()
    if isinstance(decoded, dict) and isinstance(decoded.get("country"), str):
        region = decoded["country"].strip().upper() or region
    found: set[str | None] = set()
    for name, text in _named_strings(decoded, ""):
        # Any string that is an address counts, whatever its field is called; a phone
        # only where the field says so (digits alone could be anything).
        email = normalise_email(text.strip()) if "@" in text else None
        if email is not None:
            found.add(identity_key(pepper, "erasure:email", email))
        elif any(hint in name.lower() for hint in _PHONE_HINTS):
            phone = normalise_phone(text.strip(), region)
            found.add(identity_key(pepper, "erasure:phone", phone))
    return {key for key in found if key is not None}


def _named_strings(node: Any, name: str, depth: int = 0) -> Iterator[tuple[str, str]]:
    """(field name, string) for every string in a decoded JSON document; a Meta-style
    ``{"name": n, "values": [...]}`` entry names its values ``n``."""
    if depth > 32:
        return
    if isinstance(node, str):
        yield name, node
    elif isinstance(node, list):
        for item in node:
            yield from _named_strings(item, name, depth + 1)
    elif isinstance(node, dict):
        entry_name = node.get("name")
        if isinstance(entry_name, str) and "values" in node:
            yield from _named_strings(node["values"], entry_name, depth + 1)
        for key, item in node.items():
            yield from _named_strings(item, str(key), depth + 1)
