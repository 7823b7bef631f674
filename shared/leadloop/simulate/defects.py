"""Malformed ``leads.raw`` records: one way of breaking the contract per :class:`Defect`.

Each corruption turns a well-formed lead into bytes that ingest must reject (invalid
JSON, invalid UTF-8, no contact, bad source id, wrong types, over 64 KiB, over 50
attributes). It draws only from the caller's PRNG, so the traffic stays deterministic.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Final

__all__ = ["MAX_ATTRIBUTES", "MAX_RECORD_BYTES", "Defect"]

#: Contract limits (DESIGN.md, ``leads.raw``); malformed records break them on purpose.
MAX_RECORD_BYTES: Final = 64 * 1024
MAX_ATTRIBUTES: Final = 50


class Defect(StrEnum):
    INVALID_JSON = "invalid_json"
    INVALID_UTF8 = "invalid_utf8"
    MISSING_CONTACT = "missing_contact"
    BAD_SOURCE = "bad_source"
    WRONG_TYPE = "wrong_type"
    TOO_LARGE = "too_large"
    TOO_MANY_ATTRIBUTES = "too_many_attributes"


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _invalid_json(rng: random.Random, lead: dict[str, Any]) -> bytes:
    text = json.dumps(lead, ensure_ascii=False)
    variant = rng.randrange(3)
    if variant == 0:  # cut off mid-transfer: an object that never closes
        return text[: rng.randrange(1, len(text) - 1)].encode()
    if variant == 1:  # a Python dict printed instead of serialised
        return repr(lead).encode()
    # a CSV row pushed where JSON belongs
    return ",".join(str(v) for v in lead.values() if not isinstance(v, dict)).encode()


def _invalid_utf8(rng: random.Random, lead: dict[str, Any]) -> bytes:
    """Bytes a legacy export writes: GB18030 (Chinese Excel), Latin-1 or UTF-16."""
    text = json.dumps(lead, ensure_ascii=False)
    encoding = rng.choice(("gb18030", "latin-1", "utf-16"))
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        data = text.encode("utf-16")
    # Pure ASCII (or a lucky byte sequence) would still decode: UTF-16's byte order
    # mark (FF FE) never does.
    return data if not _is_utf8(data) else text.encode("utf-16")


def _missing_contact(rng: random.Random, lead: dict[str, Any]) -> bytes:
    for contact in ("email", "phone"):
        if rng.random() < 0.5:
            lead.pop(contact, None)
        else:
            lead[contact] = None
    return json.dumps(lead, ensure_ascii=False).encode()


def _bad_source(rng: random.Random, lead: dict[str, Any]) -> bytes:
    lead["source"] = rng.choice(
        ("Web Form", "LEAD_ADS", "wechat mini program", "trade-show/2025", "", "微信", "r" * 65)
    )
    return json.dumps(lead, ensure_ascii=False).encode()


def _wrong_type(rng: random.Random, lead: dict[str, Any]) -> bytes:
    field_name, wrong = rng.choice(
        (
            ("company_size", "51-200"),
            ("budget", "10k-50k"),
            ("occurred_at", "yesterday afternoon"),
            ("attributes", {"utm": {"source": "baidu", "medium": "cpc"}}),
            ("source_lead_id", rng.randrange(10**6)),
            ("email", [f"{rng.randrange(10**6)}@qq.com", "sales@163.com"]),
            ("country", "China"),
        )
    )
    lead[field_name] = wrong
    return json.dumps(lead, ensure_ascii=False).encode()


def _too_large(rng: random.Random, lead: dict[str, Any]) -> bytes:
    paragraph = "> Forwarded thread: please see the requirements below and call back. "
    lead["message"] = paragraph * (MAX_RECORD_BYTES // len(paragraph) + rng.randint(1, 400))
    return json.dumps(lead, ensure_ascii=False).encode()


def _too_many_attributes(rng: random.Random, lead: dict[str, Any]) -> bytes:
    count = rng.randint(MAX_ATTRIBUTES + 1, 3 * MAX_ATTRIBUTES)
    lead["attributes"] = {f"custom_field_{i}": f"value {rng.randrange(1000)}" for i in range(count)}
    return json.dumps(lead, ensure_ascii=False).encode()


_CORRUPTIONS: Final[dict[Defect, Callable[[random.Random, dict[str, Any]], bytes]]] = {
    Defect.INVALID_JSON: _invalid_json,
    Defect.INVALID_UTF8: _invalid_utf8,
    Defect.MISSING_CONTACT: _missing_contact,
    Defect.BAD_SOURCE: _bad_source,
    Defect.WRONG_TYPE: _wrong_type,
    Defect.TOO_LARGE: _too_large,
    Defect.TOO_MANY_ATTRIBUTES: _too_many_attributes,
}
