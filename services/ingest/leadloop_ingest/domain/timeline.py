"""CRM events as ingest receives them: decoded and checked, or rejected with a reason.

ingest is the system of record for a lead's life: ``leads.assigned`` (owner),
``crm.activities``, ``crm.stage-changes`` and ``crm.satisfaction`` (the timeline a
manager reviews), the topics the registry names as ingest's inputs besides
``leads.raw``, each decoded with its registered model. Ingest is the edge that
validates CRM records for every other service, so it does not skip a bad one as
``leadloop.decoding`` does: events that cannot be used go to ``crm.rejected`` with
their bytes and a reason; like ``validate`` this never raises. Whether the lead exists
is PostgreSQL's to say (``unknown_lead``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from leadloop.events import (
    ActivityRecorded,
    LeadAssigned,
    SatisfactionRecorded,
    Stage,
    StageChanged,
)
from leadloop_ingest.domain.intake import Position

__all__ = [
    "QUALIFYING_ACTIVITIES",
    "CrmRejection",
    "TimelineEvent",
    "Unusable",
    "parse",
]

TimelineEvent = ActivityRecorded | StageChanged | SatisfactionRecorded | LeadAssigned

#: Activities that move a new or assigned lead to ``contacted`` (a private note does not).
QUALIFYING_ACTIVITIES = frozenset({"call", "email", "message", "meeting", "visit"})

_STAGES = frozenset(s.value for s in Stage)


@dataclass(frozen=True, slots=True)
class CrmRejection:
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Unusable:
    """A CRM record that is not used, where it was and why (stored in ``crm_rejects``)."""

    position: Position
    rejection: CrmRejection
    recorded_at: datetime


def parse(model: type[BaseModel], data: bytes) -> TimelineEvent | CrmRejection:
    """Decode one event of a timeline topic whose registered event model is ``model``.
    Never raises."""
    try:
        decoded: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return CrmRejection("invalid_json", "not valid UTF-8 JSON")
    if not isinstance(decoded, dict):
        return CrmRejection("schema_violation", "expected a JSON object")
    if model is StageChanged:
        stage = decoded.get("stage")
        if isinstance(stage, str) and stage not in _STAGES:
            return CrmRejection("unknown_stage", "stage is not a pipeline stage")
        if stage == Stage.LOST.value and not decoded.get("loss_reason"):
            return CrmRejection("missing_loss_reason", "a lost lead needs a loss_reason code")
    if model is SatisfactionRecorded:
        score = decoded.get("score")
        # A whole number off the scale is most likely another scale (0-10, NPS, a
        # percentage): its own code tells a human to map it; sent again, it fails again.
        if type(score) is int and not 1 <= score <= 5:
            return CrmRejection("score_out_of_range", "score must be from 1 to 5")
    try:
        event = model.model_validate(decoded)
    except ValidationError as exc:
        fields = sorted(
            {str(e["loc"][0]) for e in exc.errors() if e["loc"]} & set(model.model_fields)
        )
        return CrmRejection("schema_violation", "invalid fields: " + (", ".join(fields) or "?"))
    except (RecursionError, ValueError) as exc:
        return CrmRejection("schema_violation", type(exc).__name__)
    if not isinstance(event, TimelineEvent):
        return CrmRejection("schema_violation", "not a timeline event")
    return event
