"""What the vendor mappings share: their outcomes, the contract events they build, and
lenient readers of vendor values.

Each vendor module decides which of its values mean what; :func:`activity_event` and
:func:`stage_change_event` then apply the rules every vendor obeys (a rep is required, a
``lost`` needs a mapped loss reason, an invalid event is a ``schema_violation``
naming fields, never values). The ``read_*`` helpers turn whatever a vendor sent into a
value or None; none of them raises.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from leadloop.events import ActivityKind, ActivityRecorded, LossReason, Stage, StageChanged
from leadloop_ingest.domain.vendors.targets import FieldNames, Target

__all__ = [
    "Emit",
    "Ignore",
    "Outcome",
    "Reject",
    "activity_event",
    "read_date",
    "read_json",
    "read_millis",
    "read_number",
    "read_text",
    "read_when",
    "stage_change_event",
]


@dataclass(frozen=True, slots=True)
class Emit:
    """A contract event to publish."""

    event: ActivityRecorded | StageChanged


@dataclass(frozen=True, slots=True)
class Reject:
    """An item that cannot be mapped; it goes to ``crm.rejected`` with this reason."""

    reason: str
    #: Names fields and the target, never a submitted value.
    detail: str
    #: Vendor ids that let a human find the record (no values, no personal data).
    reference: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Ignore:
    """An item that is not leadloop's (an event the target does not map)."""

    why: str


Outcome = Emit | Reject | Ignore


def activity_event(
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
    """An ``ActivityRecorded`` of mapped values, or why there is none."""
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


def stage_change_event(
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
    """A ``StageChanged`` of mapped values; loss reason, amount and close date are read
    from ``data`` by the target's field names."""
    f = target.fields
    if not rep:
        return Reject("missing_rep", f"{name}: {f.rep_id or 'rep_id'} is empty", ref)
    loss: LossReason | None = None
    if stage is Stage.LOST:
        raw = read_text(data.get(f.loss_reason)) if f.loss_reason else None
        if not raw:
            return Reject("missing_loss_reason", f"{name}: {f.loss_reason} is empty", ref)
        loss = target.loss_reasons.get(raw)
        if loss is None:
            return Reject(
                "unmapped_value", f"{name}: {f.loss_reason} has a value not in loss_reasons", ref
            )
    amount = read_number(data.get(f.amount)) if f.amount else None
    close = read_date(data.get(f.close_date)) if f.close_date else None
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


def read_json(body: bytes) -> Any:
    """The decoded UTF-8 JSON of ``body``; None when it is not that."""
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None


def read_text(value: Any) -> str | None:
    """A non-blank string (stripped) or an integer as text; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value) if abs(value) < 10**30 else None
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def read_number(value: Any) -> float | None:
    """A finite, non-negative number (an amount), from a number or its text."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, int | float | str) else math.nan
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def read_millis(value: Any) -> datetime | None:
    """Epoch milliseconds (a number or its digits) as a UTC time."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def read_when(value: Any) -> datetime | None:
    """An RFC 3339 / ISO 8601 time with an offset (or ``Z``), or epoch milliseconds."""
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return read_millis(text)
        return parsed if parsed.tzinfo is not None else None
    return read_millis(value)


def read_date(value: Any) -> date | None:
    """The ISO date at the start of a string (a date or a date-time)."""
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None
