"""Vendor CRM webhooks mapped onto leadloop's CRM contract (``crm.activities``,
``crm.stage-changes``), configured by ``config/crm-inbound.yaml``.

Three vendors, one shape of decision per item:

- **HubSpot** webhook subscriptions (a JSON array of events). A subscription event
  carries only ``objectId`` and the one property that changed, while the contract needs
  the leadloop lead id, the rep and (for ``lost``) a loss reason. So the web adapter
  reads the record from HubSpot's CRM API by ``objectId`` (:class:`HubSpotLookup`) and
  hands the result in as a :class:`HubSpotRecord`; the mapping here stays pure.
- **简道云** data push (``data_create`` / ``data_update`` of one form record, widgets
  named by the target's ``fields``).
- **Salesforce** Outbound Messages (SOAP ``notifications``; see :func:`parse_outbound`).

Every item ends as exactly one :class:`Emit` (a contract event), :class:`Reject` (a
visible reason; the item goes to ``crm.rejected``) or :class:`Ignore` (an event the
target does not subscribe leadloop to, e.g. a ``data_remove``). A vendor value that has
no entry in the target's maps is ``unmapped_value`` naming the field, never a guess,
and never the value (a widget may hold personal data). Everything here is pure and
total: no I/O, time comes in as ``now``, arbitrary input never raises (property-tested).
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from leadloop.events import (
    ActivityKind,
    ActivityRecorded,
    LossReason,
    Stage,
    StageChanged,
    deterministic_id,
)

__all__ = [
    "CRM_STAGES",
    "Emit",
    "FieldNames",
    "HubSpotLookup",
    "HubSpotRecord",
    "Ignore",
    "Inbound",
    "Notification",
    "OutboundMessage",
    "Outcome",
    "Reject",
    "Target",
    "hubspot_events",
    "hubspot_lookup",
    "map_hubspot",
    "map_jiandaoyun",
    "map_salesforce",
    "parse_outbound",
    "same_org",
    "soap_ack",
]

#: Stages a CRM may publish (``new`` and ``assigned`` are leadloop's own).
CRM_STAGES: Final = frozenset(
    {
        Stage.CONTACTED,
        Stage.QUALIFIED,
        Stage.PROPOSAL,
        Stage.NEGOTIATION,
        Stage.WON,
        Stage.LOST,
    }
)

EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{2,127}$")]
TargetName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,64}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
OrgId = Annotated[str, StringConstraints(pattern=r"^00D[A-Za-z0-9]{12}([A-Za-z0-9]{3})?$")]

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


# ----------------------------------------------------------------------------- config


class FieldNames(BaseModel):
    """The vendor's names for the fields the contract needs (HubSpot properties, 简道云
    widget ids, Salesforce API field names). Unset = the vendor does not send it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lead_id: Name
    rep_id: Name | None = None
    stage: Name | None = None
    loss_reason: Name | None = None
    amount: Name | None = None
    close_date: Name | None = None
    activity_kind: Name | None = None
    outcome: Name | None = None
    occurred_at: Name | None = None


class Target(BaseModel):
    """One inbound vendor endpoint: ``POST /v1/crm/hooks/<kind>/<target name>``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["hubspot", "jiandaoyun", "salesforce"]
    #: Name of the environment variable holding the secret (HubSpot: the app's client
    #: secret; 简道云: the push secret). Never the secret itself. Salesforce has none.
    secret_env: EnvName | None = None
    #: Salesforce: the org whose Outbound Messages are accepted (15 or 18 characters).
    organization_id: (
        Annotated[str, StringConstraints(pattern=r"^00D[A-Za-z0-9]{12}([A-Za-z0-9]{3})?$")] | None
    ) = None
    #: 简道云 and Salesforce: what one record of this form / object is.
    emits: Literal["stage_change", "activity"] | None = None
    fields: FieldNames
    #: HubSpot: the properties whose changes are stage changes.
    stage_properties: tuple[Name, ...] = ("lifecyclestage", "dealstage")
    #: HubSpot: the CRM API (read with a private-app token from ``api_token_env``).
    api_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$")] = (
        "https://api.hubapi.com"
    )
    api_token_env: EnvName | None = None
    #: HubSpot: scheme and host HubSpot calls (the URL in the app's settings) when a
    #: proxy in front of ingest changes them; the signature covers the full URI.
    public_base_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+$")] | None = None
    stages: dict[Name, Stage] = Field(default_factory=dict)
    loss_reasons: dict[Name, LossReason] = Field(default_factory=dict)
    #: Vendor activity type -> contract kind (HubSpot: the object type, e.g. ``calls``).
    activity_kinds: dict[Name, ActivityKind] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Target:
        bad = sorted(v for v, s in self.stages.items() if s not in CRM_STAGES)
        if bad:
            raise ValueError(f"stages: {bad} map to a stage only leadloop sets")
        if self.kind == "salesforce":
            if self.organization_id is None:
                raise ValueError("organization_id is required for kind salesforce")
            if self.secret_env is not None:
                raise ValueError("secret_env: Salesforce Outbound Messages carry no signature")
        elif self.secret_env is None:
            raise ValueError(f"secret_env is required for kind {self.kind}")
        if self.kind == "hubspot" and self.api_token_env is None:
            raise ValueError("api_token_env is required for kind hubspot (records are read)")
        if self.kind != "hubspot" and self.emits is None:
            raise ValueError(f"emits is required for kind {self.kind}")
        emits_stages = self.kind == "hubspot" or self.emits == "stage_change"
        emits_activities = self.kind == "hubspot" or self.emits == "activity"
        if emits_stages and self.kind != "hubspot" and self.fields.stage is None:
            raise ValueError("fields.stage is required to emit stage changes")
        if emits_activities and self.kind != "hubspot" and self.fields.activity_kind is None:
            raise ValueError("fields.activity_kind is required to emit activities")
        if emits_stages and not self.stages:
            raise ValueError("stages must map at least one vendor value")
        if emits_activities and not self.activity_kinds:
            raise ValueError("activity_kinds must map at least one vendor value")
        return self


class Inbound(BaseModel):
    """``config/crm-inbound.yaml``: every vendor endpoint by target name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    targets: dict[TargetName, Target]


# ---------------------------------------------------------------------------- outcomes


@dataclass(frozen=True, slots=True)
class Emit:
    event: ActivityRecorded | StageChanged


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str
    #: Names fields and the target, never a submitted value.
    detail: str
    #: Vendor ids that let a human find the record (no values, no personal data).
    reference: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Ignore:
    why: str


Outcome = Emit | Reject | Ignore


# -------------------------------------------------------------------------------- HubSpot


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
    decoded = _json(body)
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
    occurred = _millis(event.get("occurredAt")) or now
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
    rep = _text(record.properties.get(f.rep_id)) if f.rep_id else None
    if lookup.object_type in _HUBSPOT_ENGAGEMENTS:
        kind = target.activity_kinds[lookup.object_type]
        when = _when(record.properties.get(f.occurred_at)) if f.occurred_at else None
        outcome = _text(record.properties.get(f.outcome)) if f.outcome else None
        return _activity(
            event_id, record.lead_id, rep, kind, when or occurred, outcome, name, f, ref
        )
    prop = str(event.get("propertyName"))
    stage = target.stages.get(_text(event.get("propertyValue")) or "")
    if stage is None:
        return Reject("unmapped_value", f"{name}: {prop} has a value not in stages", ref)
    return _stage_change(
        event_id, record.lead_id, rep, stage, occurred, record.properties, name, target, ref
    )


# ------------------------------------------------------------------------------- 简道云


def map_jiandaoyun(
    body: bytes, deliver_id: str | None, target: Target, name: str, now: datetime
) -> Outcome:
    """One data push (``{"op", "data": {widget: value}}``) as a contract event.

    ``event_id``: a stage change is keyed by (record, stage), so the pushes of later
    edits that leave the stage as it was are recognised downstream as the same event
    (a record returning to a stage it left is therefore not told twice); an activity
    record is keyed by the record, one touch per follow-up record.
    """
    decoded = _json(body)
    ref = {"vendor": "jiandaoyun", "target": name}
    if deliver_id:
        ref["deliver_id"] = deliver_id[:128]
    if not isinstance(decoded, dict) or not isinstance(decoded.get("data"), dict):
        return Reject("schema_violation", f"{name}: expected {{op, data: {{…}}}}", ref)
    op = decoded.get("op")
    if op not in ("data_create", "data_update"):
        return Ignore("op")
    data: dict[str, Any] = decoded["data"]
    record_id = _text(data.get("_id"))
    if record_id:
        ref["record_id"] = record_id[:128]
    f = target.fields
    lead_id = _text(data.get(f.lead_id))
    if not lead_id:
        return Reject("missing_lead_id", f"{name}: {f.lead_id} is empty", ref)
    rep = _member(data.get(f.rep_id)) if f.rep_id else None
    when = _when(data.get(f.occurred_at)) if f.occurred_at else None
    occurred = when or _when(data.get("updateTime")) or _millis(decoded.get("opTime")) or now
    if target.emits == "activity":
        assert f.activity_kind is not None  # by Target's validator
        kind = target.activity_kinds.get(_text(data.get(f.activity_kind)) or "")
        if kind is None:
            return Reject("unmapped_value", f"{name}: {f.activity_kind} not in activity_kinds", ref)
        outcome = _text(data.get(f.outcome)) if f.outcome else None
        event_id = deterministic_id("jiandaoyun", name, record_id or deliver_id or lead_id)
        return _activity(event_id, lead_id, rep, kind, occurred, outcome, name, f, ref)
    assert f.stage is not None  # by Target's validator
    stage = target.stages.get(_text(data.get(f.stage)) or "")
    if stage is None:
        return Reject("unmapped_value", f"{name}: {f.stage} has a value not in stages", ref)
    event_id = deterministic_id("jiandaoyun", name, record_id or deliver_id or "", stage.value)
    return _stage_change(event_id, lead_id, rep, stage, occurred, data, name, target, ref)


def _member(value: Any) -> str | None:
    """A member widget's ``{"username": …}`` (or plain text) as the rep id."""
    if isinstance(value, dict):
        return _text(value.get("username"))
    if isinstance(value, list) and value:
        return _member(value[0])
    return _text(value)


# ----------------------------------------------------------------------------- Salesforce

_OM_NS: Final = "http://soap.sforce.com/2005/09/outbound"
_SOAP_NS: Final = "http://schemas.xmlsoap.org/soap/envelope/"
_XSI_NS: Final = "http://www.w3.org/2001/XMLSchema-instance"
_UNSAFE_XML: Final = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Notification:
    id: str
    sobject_type: str
    fields: dict[str, str | None]


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    organization_id: str
    action_id: str
    notifications: tuple[Notification, ...]


def parse_outbound(body: bytes) -> OutboundMessage | Reject:
    """A Salesforce Outbound Message (SOAP ``notifications``), or why it is not one.

    The XML is parsed by the standard library only after screening: a body that is not
    UTF-8, holds a NUL, or declares a DTD or an entity is refused, which rules out entity
    expansion ("billion laughs") and external entities as defusedxml would. Never raises.
    """
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return Reject("invalid_xml", "not UTF-8")
    if b"\x00" in body or _UNSAFE_XML.search(body):
        return Reject("forbidden_xml", "DTDs and entities are not accepted")
    try:
        root = ET.fromstring(body)  # noqa: S314 - screened above: no DTD, no entities
    except (ET.ParseError, ValueError, RecursionError):
        return Reject("invalid_xml", "not well-formed XML")
    notifications = root.find(f"{{{_SOAP_NS}}}Body/{{{_OM_NS}}}notifications")
    if root.tag != f"{{{_SOAP_NS}}}Envelope" or notifications is None:
        return Reject("schema_violation", "not a SOAP notifications message")
    org = (notifications.findtext(f"{{{_OM_NS}}}OrganizationId") or "").strip()
    action = (notifications.findtext(f"{{{_OM_NS}}}ActionId") or "").strip()
    items: list[Notification] = []
    for n in notifications.findall(f"{{{_OM_NS}}}Notification"):
        nid = (n.findtext(f"{{{_OM_NS}}}Id") or "").strip()
        sobject = n.find(f"{{{_OM_NS}}}sObject")
        if not nid or sobject is None:
            return Reject("schema_violation", "a Notification lacks Id or sObject")
        xsi_type = sobject.get(f"{{{_XSI_NS}}}type", "")
        fields: dict[str, str | None] = {}
        for child in sobject:
            local = child.tag.rpartition("}")[2]
            nil = child.get(f"{{{_XSI_NS}}}nil") == "true"
            fields[local] = None if nil else (child.text or "").strip()
        items.append(Notification(nid[:128], xsi_type.rpartition(":")[2], fields))
    if not org or not items:
        return Reject("schema_violation", "OrganizationId or Notification missing")
    return OutboundMessage(org, action, tuple(items))


def same_org(configured: str, given: str) -> bool:
    """Salesforce ids compare on their case-sensitive 15-character form."""
    return len(given) in (15, 18) and configured[:15] == given[:15]


def map_salesforce(notification: Notification, target: Target, name: str, now: datetime) -> Outcome:
    """One notification's sObject as a contract event; ``event_id`` from its Id, so a
    redelivered message yields the same events."""
    f = target.fields
    data = notification.fields
    ref = {"vendor": "salesforce", "target": name, "notification_id": notification.id}
    if data.get("Id"):
        ref["record_id"] = str(data["Id"])[:18]
    event_id = deterministic_id("salesforce", name, notification.id)
    lead_id = _text(data.get(f.lead_id))
    if not lead_id:
        return Reject("missing_lead_id", f"{name}: {f.lead_id} is empty", ref)
    rep = _text(data.get(f.rep_id)) if f.rep_id else None
    when = _when(data.get(f.occurred_at)) if f.occurred_at else None
    occurred = when or now
    if target.emits == "activity":
        assert f.activity_kind is not None  # by Target's validator
        kind = target.activity_kinds.get(_text(data.get(f.activity_kind)) or "")
        if kind is None:
            return Reject("unmapped_value", f"{name}: {f.activity_kind} not in activity_kinds", ref)
        outcome = _text(data.get(f.outcome)) if f.outcome else None
        return _activity(event_id, lead_id, rep, kind, occurred, outcome, name, f, ref)
    assert f.stage is not None  # by Target's validator
    stage = target.stages.get(_text(data.get(f.stage)) or "")
    if stage is None:
        return Reject("unmapped_value", f"{name}: {f.stage} has a value not in stages", ref)
    return _stage_change(event_id, lead_id, rep, stage, occurred, data, name, target, ref)


def soap_ack(ack: bool = True) -> bytes:
    """The ``notificationsResponse`` Salesforce waits for (one Ack covers the message)."""
    value = "true" if ack else "false"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{_SOAP_NS}"><soapenv:Body>'
        f'<notificationsResponse xmlns="{_OM_NS}"><Ack>{value}</Ack></notificationsResponse>'
        "</soapenv:Body></soapenv:Envelope>"
    ).encode()


# --------------------------------------------------------------------------------- shared


def _activity(
    event_id: str,
    lead_id: str,
    rep: str | None,
    kind: ActivityKind,
    occurred: datetime,
    outcome: str | None,
    name: str,
    f: FieldNames,
    ref: dict[str, str],
) -> Outcome:
    if not rep:
        return Reject("missing_rep", f"{name}: {f.rep_id or 'rep_id'} is empty", ref)
    try:
        event = ActivityRecorded(
            event_id=event_id,
            lead_id=lead_id,
            rep_id=rep,
            kind=kind,
            occurred_at=occurred,
            outcome=outcome[:256] if outcome else None,
        )
    except ValidationError as exc:
        return Reject("schema_violation", _invalid(exc, name), ref)
    return Emit(event)


def _stage_change(
    event_id: str,
    lead_id: str,
    rep: str | None,
    stage: Stage,
    occurred: datetime,
    data: Mapping[str, Any],
    name: str,
    target: Target,
    ref: dict[str, str],
) -> Outcome:
    f = target.fields
    if not rep:
        return Reject("missing_rep", f"{name}: {f.rep_id or 'rep_id'} is empty", ref)
    loss: LossReason | None = None
    if stage is Stage.LOST:
        raw = _text(data.get(f.loss_reason)) if f.loss_reason else None
        if not raw:
            return Reject("missing_loss_reason", f"{name}: {f.loss_reason} is empty", ref)
        loss = target.loss_reasons.get(raw)
        if loss is None:
            return Reject(
                "unmapped_value", f"{name}: {f.loss_reason} has a value not in loss_reasons", ref
            )
    amount = _number(data.get(f.amount)) if f.amount else None
    close = _date(data.get(f.close_date)) if f.close_date else None
    try:
        event = StageChanged(
            event_id=event_id,
            lead_id=lead_id,
            stage=stage,
            occurred_at=occurred,
            rep_id=rep,
            amount=amount,
            expected_close_date=close,
            loss_reason=loss,
        )
    except ValidationError as exc:
        return Reject("schema_violation", _invalid(exc, name), ref)
    return Emit(event)


def _invalid(exc: ValidationError, name: str) -> str:
    fields = sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]})
    return f"{name}: invalid " + (", ".join(fields) or "event")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value) if abs(value) < 10**30 else None
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, int | float | str) else math.nan
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _millis(value: Any) -> datetime | None:
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _when(value: Any) -> datetime | None:
    """An RFC 3339 / ISO 8601 time with an offset (or ``Z``), or epoch milliseconds."""
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return _millis(text)
        return parsed if parsed.tzinfo is not None else None
    return _millis(value)


def _date(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None
