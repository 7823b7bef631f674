"""One lead's review record: its stored facts (``metric_applied_events.fact``, the
metrics service's compact, PII-free JSON) folded into what the report needs of it.

The report streams the facts grouped by lead and folds each lead into one small
:class:`LeadRecord`, which is tallied and dropped: memory grows with the number of
distinct label values, not with the number of leads.

Facts arrive from several topics in any order, so every choice here is by the facts'
own times, never by arrival: the latest assignment (by ``assigned_at``, then event id)
gives the team and the owner, the latest CRM stage (by ``occurred_at``, then event id)
whether the lead is won or lost, first times are minima. A fact whose own time is after
the report's cut-off ``until`` is left out, so a report of a past period can be
repeated and says the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

__all__ = [
    "FOLLOWUP_STATUSES",
    "FUNNEL_STAGES",
    "OPEN_STAGES",
    "Breach",
    "LeadRecord",
    "fold_lead",
]

OPEN_STAGES = ("new", "assigned", "contacted", "qualified", "proposal", "negotiation")
FUNNEL_STAGES = (*OPEN_STAGES, "won", "lost")
FOLLOWUP_STATUSES = ("within_sla", "late", "missed", "pending")
_RANK = {stage: n for n, stage in enumerate(FUNNEL_STAGES)}
_TIME_OF = {
    "Accepted": "accepted_at",
    "Assigned": "assigned_at",
    "Touched": "occurred_at",
    "StageMoved": "occurred_at",
    "Rated": "occurred_at",
    "Escalated": "breached_at",
    "Silenced": "quiet_since",
}


@dataclass(frozen=True, slots=True)
class Breach:
    """One escalation step that fired on the lead (once per escalation id)."""

    kind: str
    level: int
    #: The owner the step was about (the lead's owner then when the step named none).
    rep: str | None


@dataclass(frozen=True, slots=True)
class LeadRecord:
    """What the review keeps of one accepted lead. Times are UTC-aware; durations in
    milliseconds; amounts in cents. ``team`` is the team of the latest assignment
    (``"unassigned"`` before any)."""

    lead_id: str
    source: str
    accepted_at: datetime
    priority: str
    customer_won_before: bool
    campaign: str | None
    product: str | None
    industry: str | None
    region: str | None
    team: str
    #: Owner of the latest assignment (None: pooled or never owned).
    owner: str | None
    #: Everyone who owned the lead at some point, in order of their first assignment.
    owners: tuple[str, ...]
    first_owner: str | None
    #: The first owner's assignment to the first touch (metrics' first response).
    first_touch_ms: int | None
    #: Stages reached, ``new`` (accepted), ``assigned`` (owned), ``contacted`` (touched)
    #: and every stage the CRM reported.
    reached: frozenset[str]
    #: ``won``, ``lost`` or None (open): the latest CRM stage when it is a closed one.
    outcome: str | None
    closed_at: datetime | None
    #: The latest amount the CRM gave, in cents (0 when none).
    amount_cents: int
    loss_reason: str | None
    #: The furthest open stage reached before the loss.
    loss_stage: str | None
    #: The owner at the close: latest owning assignment at or before it, else the first.
    closer: str | None
    #: How long the lead stayed in each open stage it was seen to leave.
    stage_ms: tuple[tuple[str, int], ...]
    followup: str | None  # one of FOLLOWUP_STATUSES, None when nobody owned the lead
    breaches: tuple[Breach, ...]
    #: Owned, open and not moved since the metrics declared it silent.
    silent: bool
    #: Satisfaction scores (1-5) and the rep each was about (None: not said).
    ratings: tuple[tuple[int, str | None], ...]


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _min(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    return a if b is None or a <= b else b


def fold_lead(
    lead_id: str, facts: Iterable[Mapping[str, Any]], until: datetime
) -> LeadRecord | None:
    """The record of one lead from its facts (JSON as stored, any order, duplicates
    allowed); None when no acceptance of it is known by ``until``."""
    accepted: Mapping[str, Any] | None = None
    accepted_order: tuple[datetime, str] | None = None
    assignments: list[tuple[datetime, str, Mapping[str, Any]]] = []
    stages: list[tuple[datetime, str, Mapping[str, Any]]] = []
    first_touch: datetime | None = None
    last_move: datetime | None = None
    quiet_since: datetime | None = None
    clocks: dict[str, tuple[bool, Mapping[str, Any]]] = {}
    ratings: dict[str, tuple[int, str | None]] = {}
    seen: set[str] = set()
    for fact in facts:
        event_id = fact["event_id"]
        if event_id in seen:
            continue
        seen.add(event_id)
        kind = fact["type"]
        field = _TIME_OF.get(kind)
        if field is None:
            continue
        at = _when(fact.get(field))
        if at is not None and at > until:
            continue
        if kind == "Accepted":
            assert at is not None
            if accepted_order is None or (at, event_id) < accepted_order:
                accepted, accepted_order = fact, (at, event_id)
        elif kind == "Assigned":
            assert at is not None
            assignments.append((at, event_id, fact))
            last_move = max(last_move or at, at)
        elif kind == "Touched":
            assert at is not None
            if fact["touch"]:
                first_touch = _min(first_touch, at)
                last_move = max(last_move or at, at)
        elif kind == "StageMoved":
            assert at is not None
            stages.append((at, event_id, fact))
            last_move = max(last_move or at, at)
        elif kind == "Rated":
            ratings[event_id] = (int(fact["score"]), fact.get("rep"))
        elif kind == "Silenced":
            assert at is not None
            quiet_since = max(quiet_since or at, at)
        else:  # Escalated
            old = clocks.get(fact["escalation_id"])
            fired = bool(fact["firing"]) or (old is not None and old[0])
            keep = fact if fact["firing"] or old is None else old[1]
            clocks[fact["escalation_id"]] = (fired, keep)
    if accepted is None or accepted_order is None:
        return None
    accepted_at = accepted_order[0]
    assignments.sort(key=lambda a: (a[0], a[1]))
    stages.sort(key=lambda s: (s[0], s[1]))
    owning = [(at, f["owner"]) for at, _, f in assignments if f["owned"] and f.get("owner")]
    latest = assignments[-1][2] if assignments else None
    team = latest["team"] if latest is not None else "unassigned"
    owner = latest["owner"] if latest is not None and latest["owned"] else None
    first_owned_at, first_owner = owning[0] if owning else (None, None)
    owners = tuple(dict.fromkeys(o for _, o in owning))

    entered: dict[str, datetime] = {"new": accepted_at}
    if first_owned_at is not None:
        entered["assigned"] = first_owned_at
    if first_touch is not None:
        entered["contacted"] = first_touch
    for at, _, f in stages:
        stage = f["stage"]
        if stage not in entered or at < entered[stage]:
            entered[stage] = at
    reached = frozenset(entered)

    outcome = closed_at = loss_reason = loss_stage = None
    amount_cents = 0
    for _at, _, f in stages:
        if f.get("amount") is not None:
            amount_cents = round(float(f["amount"]) * 100)
    if stages and stages[-1][2]["stage"] in ("won", "lost"):
        closed_at, _, last = stages[-1]
        outcome = last["stage"]
        if outcome == "lost":
            loss_reason = last.get("loss_reason") or "other"
            loss_stage = next(s for s in reversed(OPEN_STAGES) if s in reached)
    closer = None
    if closed_at is not None:
        before = [o for at, o in owning if at <= closed_at]
        closer = before[-1] if before else first_owner

    ordered = sorted((at, _RANK[s], s) for s, at in entered.items())
    stage_ms = tuple(
        (stage, _ms(left - at))
        for (at, _, stage), (left, _, _) in pairwise(ordered)
        if stage in OPEN_STAGES
    )
    first_touch_ms = (
        _ms(first_touch - first_owned_at)
        if first_touch is not None and first_owned_at is not None
        else None
    )

    breaches = []
    for _, (fired, f) in sorted(clocks.items()):
        if fired:
            breaches.append(Breach(f["kind"], int(f["level"]), f.get("owner") or owner))
    followup = _followup(first_owner, first_touch, stages, clocks)
    silent = (
        outcome is None
        and owner is not None
        and quiet_since is not None
        and (last_move is None or last_move <= quiet_since)
    )
    return LeadRecord(
        lead_id=lead_id,
        source=accepted["source"],
        accepted_at=accepted_at,
        priority=accepted["priority"],
        customer_won_before=bool(accepted.get("customer_won_before", False)),
        campaign=accepted.get("campaign"),
        product=accepted.get("product"),
        industry=accepted.get("industry"),
        region=accepted.get("region"),
        team=team,
        owner=owner,
        owners=owners,
        first_owner=first_owner,
        first_touch_ms=first_touch_ms,
        reached=reached,
        outcome=outcome,
        closed_at=closed_at,
        amount_cents=amount_cents,
        loss_reason=loss_reason,
        loss_stage=loss_stage,
        closer=closer,
        stage_ms=stage_ms,
        followup=followup,
        breaches=tuple(breaches),
        silent=silent,
        ratings=tuple(ratings[k] for k in sorted(ratings)),
    )


def _ms(delta: Any) -> int:
    # A touch logged before the assignment (clock skew) counts as 0, as in the metrics.
    return max(0, int(delta.total_seconds() * 1000))


def _followup(
    first_owner: str | None,
    first_touch: datetime | None,
    stages: list[tuple[datetime, str, Mapping[str, Any]]],
    clocks: dict[str, tuple[bool, Mapping[str, Any]]],
) -> str | None:
    """As the metrics' ``leadloop_rep_followups``: the first owner's first response
    (first touch or first CRM stage) against the first-response steps about them."""
    if first_owner is None:
        return None
    responses = [at for at, _, _ in stages]
    if first_touch is not None:
        responses.append(first_touch)
    fired = [
        _when(f.get("breached_at"))
        for ok, f in clocks.values()
        if ok and f["kind"] == "first_response" and f.get("owner") in (None, first_owner)
    ]
    breach = min((b for b in fired if b is not None), default=None)
    if responses:
        return "late" if breach is not None and breach <= min(responses) else "within_sla"
    return "missed" if breach is not None else "pending"
