"""简道云 (Jiandaoyun) data push: ``data_create`` / ``data_update`` of one form record
as a contract event.

One target per form: an opportunity form (``emits: stage_change``) or a follow-up form
(``emits: activity``), widgets named by the target's ``fields``. The push format and
its signature are documented at hc.jiandaoyun.com/open/11507 (the signature is checked
before, in ``domain/vendor_signatures.py``); ``data_remove`` and ``data_recover`` are
ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

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

__all__ = ["map_jiandaoyun"]


def map_jiandaoyun(
    body: bytes, deliver_id: str | None, target: Target, name: str, now: datetime
) -> Outcome:
    """One data push (``{"op", "data": {widget: value}}``) as a contract event.

    ``event_id``: a stage change is keyed by (record, stage), so the pushes of later
    edits that leave the stage as it was are recognised downstream as the same event
    (a record returning to a stage it left is therefore not told twice); an activity
    record is keyed by the record, one touch per follow-up record.
    """
    decoded = read_json(body)
    ref = {"vendor": "jiandaoyun", "target": name}
    if deliver_id:
        ref["deliver_id"] = deliver_id[:128]
    if not isinstance(decoded, dict) or not isinstance(decoded.get("data"), dict):
        return Reject("schema_violation", f"{name}: expected {{op, data: {{…}}}}", ref)
    op = decoded.get("op")
    if op not in ("data_create", "data_update"):
        return Ignore("op")
    data: dict[str, Any] = decoded["data"]
    record_id = read_text(data.get("_id"))
    if record_id:
        ref["record_id"] = record_id[:128]
    f = target.fields
    lead_id = read_text(data.get(f.lead_id))
    if not lead_id:
        return Reject("missing_lead_id", f"{name}: {f.lead_id} is empty", ref)
    rep = _member(data.get(f.rep_id)) if f.rep_id else None
    when = read_when(data.get(f.occurred_at)) if f.occurred_at else None
    occurred = (
        when or read_when(data.get("updateTime")) or read_millis(decoded.get("opTime")) or now
    )
    if target.emits == "activity":
        assert f.activity_kind is not None  # by Target's validator
        kind = target.activity_kinds.get(read_text(data.get(f.activity_kind)) or "")
        if kind is None:
            return Reject("unmapped_value", f"{name}: {f.activity_kind} not in activity_kinds", ref)
        outcome = read_text(data.get(f.outcome)) if f.outcome else None
        event_id = deterministic_id("jiandaoyun", name, record_id or deliver_id or lead_id)
        return activity_event(event_id, lead_id, rep, kind, occurred, outcome, name, f, ref)
    assert f.stage is not None  # by Target's validator
    stage = target.stages.get(read_text(data.get(f.stage)) or "")
    if stage is None:
        return Reject("unmapped_value", f"{name}: {f.stage} has a value not in stages", ref)
    event_id = deterministic_id("jiandaoyun", name, record_id or deliver_id or "", stage.value)
    return stage_change_event(event_id, lead_id, rep, stage, occurred, data, name, target, ref)


def _member(value: Any) -> str | None:
    """A member widget's ``{"username": …}`` (or plain text) as the rep id."""
    if isinstance(value, dict):
        return read_text(value.get("username"))
    if isinstance(value, list) and value:
        return _member(value[0])
    return read_text(value)
