"""The review's numbers computed straight from the events a test produced, sharing no
code with leadloop_review or leadloop_metrics: what `leadloop review` must report.

Only the contract (``leadloop.events``) is common. Definitions, from docs/review.md: a
lead belongs to the period it was accepted in; its team is that of its latest
assignment (by ``assigned_at``); it is won or lost when its latest stage change (by
``occurred_at``, then event id) is; a loss is at the furthest open stage it reached
(accepted → new, owned → assigned, touched → contacted, then the CRM's stages); the
first owner's follow-up is late when a first-response step about them fired at or
before the first response (first touch or stage change), missed when one fired and
there is no response, within SLA when there is a response and no such step.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from leadloop.events import (
    ActivityKind,
    ActivityRecorded,
    EscalationRaised,
    EscalationStatus,
    LeadAccepted,
    LeadAssigned,
    SatisfactionRecorded,
    StageChanged,
)

__all__ = ["Event", "ReviewTruth", "review_truth"]

Event = (
    LeadAccepted
    | LeadAssigned
    | ActivityRecorded
    | StageChanged
    | EscalationRaised
    | SatisfactionRecorded
)
_OPEN = ["new", "assigned", "contacted", "qualified", "proposal", "negotiation"]


@dataclass
class ReviewTruth:
    leads: int = 0
    #: source -> leads, won, lost, won cents
    by_source: dict[str, list[int]] = field(default_factory=dict)
    #: (stage, reason) -> lost leads
    losses: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: rep -> Counter of follow-up statuses
    followups: dict[str, Counter[str]] = field(default_factory=dict)
    #: team -> (won, won cents) of wins dated in the period, whenever accepted
    won_in_period: dict[str, list[int]] = field(default_factory=dict)
    #: team -> ratings given
    ratings: Counter[str] = field(default_factory=Counter)


def review_truth(events: list[Event], start: datetime, end: datetime) -> ReviewTruth:
    per_lead: dict[str, list[Event]] = {}
    for e in events:
        per_lead.setdefault(e.lead_id, []).append(e)
    assert sum(len(v) for v in per_lead.values()) == len(events), "every event read once"
    truth = ReviewTruth()
    scanned = 0
    for evs in per_lead.values():
        scanned += len(evs)
        acc = [e for e in evs if isinstance(e, LeadAccepted)]
        asg = sorted(
            (e for e in evs if isinstance(e, LeadAssigned)),
            key=lambda e: (e.assigned_at, e.event_id),
        )
        stg = sorted(
            (e for e in evs if isinstance(e, StageChanged)),
            key=lambda e: (e.occurred_at, e.event_id),
        )
        touches = [
            e.occurred_at
            for e in evs
            if isinstance(e, ActivityRecorded) and e.kind != ActivityKind.NOTE
        ]
        escs = [
            e
            for e in evs
            if isinstance(e, EscalationRaised) and e.status == EscalationStatus.FIRING
        ]
        assert len(acc) == 1
        team = asg[-1].team_id if asg else "unassigned"
        last = stg[-1] if stg else None
        outcome = (
            last.stage.value if last is not None and last.stage.value in ("won", "lost") else None
        )
        amounts = [e.amount for e in stg if e.amount is not None]
        cents = round(amounts[-1] * 100) if amounts else 0
        if outcome == "won" and last is not None and start <= last.occurred_at < end:
            w = truth.won_in_period.setdefault(team, [0, 0])
            w[0] += 1
            w[1] += cents
        if not start <= acc[0].accepted_at < end:
            continue
        truth.leads += 1
        s = truth.by_source.setdefault(acc[0].source, [0, 0, 0, 0])
        s[0] += 1
        s[1] += outcome == "won"
        s[2] += outcome == "lost"
        s[3] += cents if outcome == "won" else 0
        owned = [e for e in asg if e.owner_id is not None and e.kind.value != "pooled"]
        reached = (
            {"new"} | ({"assigned"} if owned else set()) | ({"contacted"} if touches else set())
        )
        reached |= {e.stage.value for e in stg}
        if outcome == "lost" and last is not None:
            furthest = [st for st in _OPEN if st in reached][-1]
            truth.losses[(furthest, (last.loss_reason.value if last.loss_reason else "other"))] += 1
        if owned:
            first = owned[0].owner_id
            assert first is not None
            responses = touches + [e.occurred_at for e in stg]
            fired = [
                e.breached_at
                for e in escs
                if e.kind.value == "first_response" and e.owner_id in (None, first)
            ]
            if responses:
                status = "late" if fired and min(fired) <= min(responses) else "within_sla"
            else:
                status = "missed" if fired else "pending"
            truth.followups.setdefault(first, Counter())[status] += 1
        truth.ratings[team] += sum(isinstance(e, SatisfactionRecorded) for e in evs)
    assert scanned == len(events)
    return truth
