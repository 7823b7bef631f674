"""HubSpot webhook subscriptions (a JSON array of events) as contract events.

A subscription event carries only ``objectId`` and the one property that changed
(developers.hubspot.com/docs/api/webhooks), while the contract needs the leadloop lead
id, the rep and (for ``lost``) a loss reason. So the web adapter reads the record from
HubSpot's CRM API by ``objectId`` (:class:`HubSpotLookup`; CRM v3 objects,
developers.hubspot.com/docs/guides/api/crm/understanding-the-crm) and hands the result
in as a :class:`HubSpotRecord`; the mapping here stays pure. The request signature is
checked before, in ``domain/vendor_signatures.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from leadloop.events import deterministic_id
from leadloop_ingest.domain.vendors.mapping import (
    Ignore,
    Outcome,
    Reject,
    activity_event,
    read_json,
    read_millis,
    read_text,
    read_when,
    stage_change_event,
)
from leadloop_ingest.domain.vendors.targets import Target

__all__ = [
    "HubSpotLookup",
    "HubSpotRecord",
    "hubspot_events",
    "hubspot_lookup",
    "map_hubspot",
]

# HubSpot object type ids (objectTypeId of generic "object.*" subscriptions) -> the CRM
# API's object type path. developers.hubspot.com/docs/guides/api/crm/understanding-the-crm
_HUBSPOT_TYPES: Final = {
    "0-1": "contacts",
    "0-3": "deals",
    "0-46": "notes",
    "0-47": "meetings",
    "0-48": "calls",
    "0-49": "emails",
    "0-27": "tasks",
}
_HUBSPOT_ENGAGEMENTS: Final = frozenset({"notes", "meetings", "calls", "emails", "tasks"})


@dataclass(frozen=True, slots=True)
class HubSpotLookup:
    """What the adapter reads from HubSpot's CRM API for one subscription event:
    ``GET {api_url}/crm/v3/objects/{object_type}/{object_id}?properties=…&associations=contacts``
    (and, when the record itself has no lead id, the first associated contact's)."""

    object_type: str
    object_id: str
    properties: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HubSpotRecord:
    """The record's properties as read; ``lead_id`` from the record itself or else its
    first associated contact; None when neither has one."""

    properties: Mapping[str, Any]
    lead_id: str | None


def hubspot_events(body: bytes) -> list[dict[str, Any]] | None:
    """The subscription events of a webhook body (a JSON array of objects); None when
    the body is not one. Never raises."""
    decoded = read_json(body)
    if not isinstance(decoded, list) or not all(isinstance(e, dict) for e in decoded):
        return None
    return decoded


def _hubspot_object(event: Mapping[str, Any]) -> tuple[str, str] | None:
    """(object type, change kind) of a subscription event, e.g. ("deals", "propertyChange")."""
    sub = event.get("subscriptionType")
    if not isinstance(sub, str) or "." not in sub:
        return None
    prefix, _, change = sub.partition(".")
    if prefix == "object":
        type_id = event.get("objectTypeId")
        object_type = _HUBSPOT_TYPES.get(type_id) if isinstance(type_id, str) else None
    else:
        object_type = {"contact": "contacts", "deal": "deals"}.get(prefix)
    return None if object_type is None else (object_type, change)


def hubspot_lookup(event: Mapping[str, Any], target: Target) -> HubSpotLookup | Ignore:
    """What to read for ``event``, or why it is not leadloop's."""
    kind = _hubspot_object(event)
    object_id = event.get("objectId")
    if kind is None:
        return Ignore("subscription_type")
    object_type, change = kind
    if isinstance(object_id, bool) or not isinstance(object_id, int | str) or object_id == "":
        return Ignore("no_object_id")
    f = target.fields
    wanted: list[str | None] = [f.lead_id, f.rep_id]
    if change == "propertyChange" and event.get("propertyName") in target.stage_properties:
        wanted += [f.loss_reason, f.amount, f.close_date]
    elif change == "creation" and object_type in _HUBSPOT_ENGAGEMENTS:
        if object_type not in target.activity_kinds:
            return Ignore("activity_type")
        wanted += [f.outcome, f.occurred_at]
    else:
        return Ignore("not_a_stage_or_activity")
    props = tuple(dict.fromkeys(p for p in wanted if p))
    return HubSpotLookup(object_type, str(object_id), props)


def map_hubspot(
    event: Mapping[str, Any], record: HubSpotRecord, target: Target, name: str, now: datetime
) -> Outcome:
    """One subscription event, with its record as read, as a contract event."""
    lookup = hubspot_lookup(event, target)
    if isinstance(lookup, Ignore):
        return lookup
    f = target.fields
    ref = {"vendor": "hubspot", "target": name, "object_type": lookup.object_type}
    ref["object_id"] = lookup.object_id
    for key in ("eventId", "subscriptionId"):
        if isinstance(event.get(key), int | str):
            ref[key] = str(event[key])
    occurred = read_millis(event.get("occurredAt")) or now
    event_id = deterministic_id(
        "hubspot",
        name,
        ref.get("eventId", ""),
        lookup.object_id,
        str(event.get("propertyName", "")),
        str(event.get("occurredAt", "")),
    )
    if not record.lead_id:
        return Reject(
            "missing_lead_id", f"{name}: no {f.lead_id} on the record or its contact", ref
        )
    rep = read_text(record.properties.get(f.rep_id)) if f.rep_id else None
    if lookup.object_type in _HUBSPOT_ENGAGEMENTS:
        kind = target.activity_kinds[lookup.object_type]
        when = read_when(record.properties.get(f.occurred_at)) if f.occurred_at else None
        outcome = read_text(record.properties.get(f.outcome)) if f.outcome else None
        return activity_event(
            event_id, record.lead_id, rep, kind, when or occurred, outcome, name, f, ref
        )
    prop = str(event.get("propertyName"))
    stage = target.stages.get(read_text(event.get("propertyValue")) or "")
    if stage is None:
        return Reject("unmapped_value", f"{name}: {prop} has a value not in stages", ref)
    return stage_change_event(
        event_id, record.lead_id, rep, stage, occurred, record.properties, name, target, ref
    )
