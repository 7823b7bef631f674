"""CRM feedback over HTTP: one request body judged as a whole, before anything is published.

A CRM posts one event object, or a JSON array of 1..``MAX_ITEMS`` of them, to
``/v1/crm/activities``, ``/v1/crm/stage-changes``, ``/v1/crm/satisfaction`` or
``/v1/crm/reps``. ``judge`` turns
the raw body into either a ``Batch`` (every item valid, ready to publish) or a
``Refusal`` (a status and a reply body). It is all-or-nothing: one invalid item refuses
the whole request, so a CRM never has to work out which half of a batch went through.

An item is valid when both readers of its topic will use it:

- ingest's own timeline consumer, through ``timeline.parse`` (``schema_violation``,
  ``unknown_stage``, ``missing_loss_reason``, ``score_out_of_range``, exactly as for a
  record produced to Kafka);
- the other consumers (assignment, sla-monitor, metrics), which decode the value with
  ``Model.model_validate_json``: the value published is the item re-serialised
  compactly, and it is validated in that form, so that bytes ingest accepts are bytes
  every consumer can read. The body itself is decoded with that same parser.

``crm.reps`` items are validated against ``RepUpdated`` (``contacts`` and
``external_ids`` included) and their ``timezone`` must name an IANA zone.

Unknown fields are passed on only where the topic may carry personal data
(``crm.activities``, whose notes can name the customer). On the PII-free topics
(``crm.stage-changes``, ``crm.satisfaction``, ``crm.reps``) only the contract's fields
are published: a CRM's own extras (a contact's name on a stage change, a customer's
comment on a survey) would otherwise ride onto a topic every service reads and keeps.

Whether a ``lead_id`` exists cannot be judged here: such an item is published and the
timeline consumer puts it on ``crm.rejected`` with ``unknown_lead``, as for Kafka input.

Details name fields, never values: bodies carry personal data (``contacts``). Pure and
total: any bytes give a ``Batch`` or a ``Refusal``, never an exception.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from leadloop.events import ActivityRecorded, RepUpdated, SatisfactionRecorded, StageChanged
from leadloop.topics import by_name
from leadloop_ingest.domain.timeline import CrmRejection, parse

__all__ = [
    "FEEDBACK_TOPICS",
    "MAX_ITEMS",
    "Batch",
    "BodyReason",
    "Item",
    "ItemError",
    "ItemReason",
    "Refusal",
    "judge",
]

#: The path's last segment -> the topic its events go to.
FEEDBACK_TOPICS: dict[str, str] = {
    "activities": "crm.activities",
    "stage-changes": "crm.stage-changes",
    "satisfaction": "crm.satisfaction",
    "reps": "crm.reps",
}

#: Items in one request at most: one produce batch, one reply a client can act on.
MAX_ITEMS = 500

_MODELS: dict[str, type[BaseModel]] = {
    "crm.activities": ActivityRecorded,
    "crm.stage-changes": StageChanged,
    "crm.satisfaction": SatisfactionRecorded,
    "crm.reps": RepUpdated,
}


class BodyReason(StrEnum):
    """Why a whole body is refused (reply ``{"error": ..., "detail": ...}``)."""

    #: Not UTF-8, not JSON, NaN/Infinity, a lone surrogate escape, too deeply nested.
    INVALID_JSON = "invalid_json"
    #: Neither an event object nor an array of them.
    NOT_EVENTS = "not_events"
    #: An empty array: nothing to accept.
    NO_ITEMS = "no_items"
    #: More than ``MAX_ITEMS`` items (413: split the batch and send again).
    TOO_MANY_ITEMS = "too_many_items"


class ItemReason(StrEnum):
    """Why one item is refused (reply ``{"errors": [{"index", "reason", "detail"}]}``)."""

    SCHEMA_VIOLATION = "schema_violation"
    UNKNOWN_STAGE = "unknown_stage"
    MISSING_LOSS_REASON = "missing_loss_reason"
    #: A satisfaction score that is a whole number outside 1..5 (another survey scale).
    SCORE_OUT_OF_RANGE = "score_out_of_range"
    #: Decodable JSON that cannot be written again as JSON (a number beyond float range).
    INVALID_JSON = "invalid_json"


@dataclass(frozen=True, slots=True)
class Item:
    """One event ready for its topic: keyed by lead (rep for ``crm.reps``)."""

    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class Batch:
    topic: str
    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True)
class ItemError:
    index: int
    #: An ``ItemReason`` value (a str: ``timeline.parse`` may grow codes of its own).
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    reason: BodyReason | None = None
    detail: str = ""
    errors: tuple[ItemError, ...] = ()

    def body(self) -> dict[str, Any]:
        if self.reason is not None:
            return {"error": self.reason.value, "detail": self.detail}
        return {
            "errors": [
                {"index": e.index, "reason": e.reason, "detail": e.detail} for e in self.errors
            ]
        }

    @property
    def code(self) -> str:
        """One code for logs: the body's reason, or the first item's."""
        if self.reason is not None:
            return self.reason.value
        return self.errors[0].reason if self.errors else "invalid"


def judge(topic: str, body: bytes, *, max_items: int = MAX_ITEMS) -> Batch | Refusal:
    """The whole body's fate on ``topic`` (a value of ``FEEDBACK_TOPICS``). Never raises."""
    try:
        # The consumers' own JSON parser (pydantic's): what it cannot read is refused here,
        # whole. Its nesting limit is fixed (Python's ``json`` stops wherever the caller's
        # stack runs out), so every process gives the same verdict on the same bytes.
        decoded: Any = from_json(body, allow_inf_nan=False)
    except ValueError:
        return Refusal(422, BodyReason.INVALID_JSON, "not valid UTF-8 JSON")
    if isinstance(decoded, dict):
        items: list[Any] = [decoded]
    elif isinstance(decoded, list):
        items = decoded
    else:
        return Refusal(422, BodyReason.NOT_EVENTS, "expected an event object or an array of them")
    if not items:
        return Refusal(422, BodyReason.NO_ITEMS, "the array is empty")
    if len(items) > max_items:
        return Refusal(
            413, BodyReason.TOO_MANY_ITEMS, f"{len(items)} items; at most {max_items} per request"
        )
    accepted: list[Item] = []
    errors: list[ItemError] = []
    for index, item in enumerate(items):
        verdict = check_item(topic, item)
        if isinstance(verdict, Item):
            accepted.append(verdict)
        else:
            errors.append(ItemError(index, verdict.reason, verdict.detail))
    if errors:
        return Refusal(422, errors=tuple(errors))
    return Batch(topic, tuple(accepted))


def check_item(topic: str, item: Any) -> Item | CrmRejection:
    """One decoded item as the value its topic's consumers will read, or why not."""
    if not isinstance(item, dict):
        return CrmRejection(ItemReason.SCHEMA_VIOLATION.value, "expected a JSON object")
    if not by_name(topic).contains_pii:
        # Only the contract's fields: a CRM's extras are not carried onto a PII-free topic.
        item = {k: v for k, v in item.items() if k in _MODELS[topic].model_fields}
    try:
        # Compact and UTF-8, the form Kafka producers of these topics send; on
        # crm.activities unknown fields stay (the model ignores them).
        text = json.dumps(item, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        value = text.encode("utf-8")
    except ValueError:  # a number beyond float range was read as inf; JSON has no inf
        return CrmRejection(ItemReason.INVALID_JSON.value, "cannot be written as JSON")
    if topic != "crm.reps":
        parsed = parse(_MODELS[topic], value)
        if isinstance(parsed, CrmRejection):
            return parsed
    model = _MODELS[topic]
    try:
        event = model.model_validate_json(value)
    except ValidationError as exc:
        return _schema_violation(model, exc)
    if isinstance(event, RepUpdated) and not _is_zone(event.timezone):
        return CrmRejection(ItemReason.SCHEMA_VIOLATION.value, "invalid fields: timezone")
    key = event.rep_id if isinstance(event, RepUpdated) else getattr(event, "lead_id", "")
    return Item(key=str(key).encode("utf-8"), value=value)


def _schema_violation(model: type[BaseModel], exc: ValidationError) -> CrmRejection:
    # Field names only: a pydantic message quotes the input value.
    fields = sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]} & set(model.model_fields))
    detail = "invalid fields: " + ", ".join(fields) if fields else "unreadable for consumers"
    return CrmRejection(ItemReason.SCHEMA_VIOLATION.value, detail)


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True
