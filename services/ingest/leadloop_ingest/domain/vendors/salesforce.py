"""Salesforce Outbound Messages: the SOAP ``notifications`` message, parsed safely, each
``Notification``'s sObject as a contract event, and the acknowledgement Salesforce waits
for.

Format: developer.salesforce.com/docs/atlas.en-us.api.meta/api/
sforce_api_om_outboundmessaging_wsdl.htm (namespace
``http://soap.sforce.com/2005/09/outbound``). Outbound Messages carry no signature: the
``OrganizationId`` must be the target's org (:func:`same_org`), the rest is TLS and an
IP allowlist in front of ingest.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from leadloop.events import deterministic_id
from leadloop_ingest.domain.vendors.mapping import (
    Outcome,
    Reject,
    activity_event,
    read_text,
    read_when,
    stage_change_event,
)
from leadloop_ingest.domain.vendors.targets import Target

__all__ = [
    "Notification",
    "OutboundMessage",
    "map_salesforce",
    "parse_outbound",
    "same_org",
    "soap_ack",
]

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
    lead_id = read_text(data.get(f.lead_id))
    if not lead_id:
        return Reject("missing_lead_id", f"{name}: {f.lead_id} is empty", ref)
    rep = read_text(data.get(f.rep_id)) if f.rep_id else None
    when = read_when(data.get(f.occurred_at)) if f.occurred_at else None
    occurred = when or now
    if target.emits == "activity":
        assert f.activity_kind is not None  # by Target's validator
        kind = target.activity_kinds.get(read_text(data.get(f.activity_kind)) or "")
        if kind is None:
            return Reject("unmapped_value", f"{name}: {f.activity_kind} not in activity_kinds", ref)
        outcome = read_text(data.get(f.outcome)) if f.outcome else None
        return activity_event(event_id, lead_id, rep, kind, occurred, outcome, name, f, ref)
    assert f.stage is not None  # by Target's validator
    stage = target.stages.get(read_text(data.get(f.stage)) or "")
    if stage is None:
        return Reject("unmapped_value", f"{name}: {f.stage} has a value not in stages", ref)
    return stage_change_event(event_id, lead_id, rep, stage, occurred, data, name, target, ref)


def soap_ack(ack: bool = True) -> bytes:
    """The ``notificationsResponse`` Salesforce waits for (one Ack covers the message)."""
    value = "true" if ack else "false"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{_SOAP_NS}"><soapenv:Body>'
        f'<notificationsResponse xmlns="{_OM_NS}"><Ack>{value}</Ack></notificationsResponse>'
        "</soapenv:Body></soapenv:Envelope>"
    ).encode()
