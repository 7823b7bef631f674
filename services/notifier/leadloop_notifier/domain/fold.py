"""The fold: input events become notices.

``fold`` applies a batch of input events, in order, to the notifier's view of the world
(the roster, the leads it has seen, the escalation steps) and returns the changes to
persist: state upserts, notices (outbox rows) and pending notices to cancel. Pure: time
comes in as ``now``, state as a ``View`` loaded by the caller.

A notice's send time is the next working moment of the recipient's team calendar
(quiet hours); only page-level notices (the Alertmanager bridge, ``alerts.py``) go at
once. A published review (``review.published``) tells every manager the roster names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from leadloop.calendar import CalendarSet
from leadloop.events import (
    AssignmentKind,
    EscalationAction,
    EscalationKind,
    EscalationRaised,
    EscalationStatus,
    LeadAccepted,
    LeadAssigned,
    RepStatus,
    RepUpdated,
    ReviewPublished,
    StageChanged,
)
from leadloop_notifier.domain.config import NotifyConfig, TeamConfig
from leadloop_notifier.domain.model import (
    HELD,
    LEAD_FACTS,
    Changes,
    EscalationStep,
    Lead,
    Notice,
    Rep,
    View,
)
from leadloop_notifier.domain.routing import (
    local_text,
    node_due,
    person_route,
    plain_text,
    recipient_zone,
    send_time,
)

__all__ = ["Input", "fold"]

Input = LeadAccepted | LeadAssigned | EscalationRaised | StageChanged | RepUpdated | ReviewPublished


@dataclass
class _Ctx:
    config: NotifyConfig
    calendars: CalendarSet
    now: datetime
    view: View
    out: Changes

    def rep(self, rep_id: str | None) -> Rep | None:
        if rep_id is None:
            return None
        return self.out.reps.get(rep_id) or self.view.reps.get(rep_id)

    def lead(self, lead_id: str) -> Lead:
        return (
            self.out.leads.get(lead_id) or self.view.leads.get(lead_id) or Lead(lead_id, facts={})
        )

    def step(self, escalation_id: str) -> EscalationStep | None:
        return self.out.steps.get(escalation_id) or self.view.steps.get(escalation_id)

    def to_person(
        self,
        rep_id: str | None,
        fallback_team: str,
        *,
        notice_key: str,
        kind: str,
        lead_id: str | None,
        variables: Mapping[str, Any],
        origin_at: datetime,
        not_before: datetime | None = None,
    ) -> Notice | None:
        if rep_id is None:
            return None
        rep = self.rep(rep_id)
        team_id = rep.team_id if rep is not None else fallback_team
        team = self.config.team(team_id)
        route = person_route(rep, team)
        if rep is not None and route is None:
            return None  # left, or no address on any channel of the team's order
        calendar = self.calendars.for_team(team_id)
        at = max(self.now, not_before) if not_before is not None else self.now
        return Notice(
            notice_key=notice_key,
            recipient=rep_id,
            # A rep the roster has not seen yet (a new hire's first lead can overtake
            # their roster entry: the topics are read side by side): the notice is held
            # (channel HELD, never sent) until crm.reps names the rep.
            channel=route[0] if route is not None else HELD,
            kind=kind,
            team_id=team_id,
            lead_id=lead_id,
            payload=_payload(
                kind,
                lead_id,
                self.lead(lead_id) if lead_id else None,
                team,
                variables,
                recipient_zone(rep, calendar),
            ),
            fallbacks=route[1] if route is not None else (),
            origin_at=origin_at,
            due_at=send_time(at, calendar),
            coalesce_s=team.coalesce_seconds,
        )


def _payload(
    kind: str,
    lead_id: str | None,
    lead: Lead | None,
    team: TeamConfig,
    variables: Mapping[str, Any],
    zone: ZoneInfo,
) -> dict[str, Any]:
    """Template variables: the kind, ids, non-personal facts, times in the recipient's
    zone and the CRM link. Every value is a string, number, bool or None."""
    payload: dict[str, Any] = {"kind": kind, "lead_id": lead_id}
    if lead is not None:
        payload.update({f: lead.facts.get(f) for f in LEAD_FACTS})
    if lead_id is not None:
        payload["crm_link"] = team.crm_link.replace("{lead_id}", lead_id)
    for name, value in variables.items():
        payload[name] = local_text(value, zone) if isinstance(value, datetime) else value
    payload["timezone"] = zone.key
    return payload


def fold(
    events: Sequence[Input],
    view: View,
    config: NotifyConfig,
    calendars: CalendarSet,
    now: datetime,
) -> Changes:
    """Apply ``events`` in order; the changes to persist (see the module docstring)."""
    ctx = _Ctx(config, calendars, now, view, Changes())
    for event in events:
        if isinstance(event, RepUpdated):
            _rep(ctx, event)
        elif isinstance(event, LeadAccepted):
            _accepted(ctx, event)
        elif isinstance(event, LeadAssigned):
            _assigned(ctx, event)
        elif isinstance(event, EscalationRaised):
            _escalation(ctx, event)
        elif isinstance(event, ReviewPublished):
            _review(ctx, event)
        else:
            _stage(ctx, event)
    return ctx.out


def _rep(ctx: _Ctx, e: RepUpdated) -> None:
    old = ctx.rep(e.rep_id)
    if old is not None and old.updated_at > e.updated_at:
        return  # an older roster entry arriving late
    rep = Rep(
        rep_id=e.rep_id,
        team_id=e.team_id,
        manager_id=e.manager_id,
        status=e.status.value,
        timezone=e.timezone,
        contacts=dict(e.contacts),
        updated_at=e.updated_at,
    )
    ctx.out.reps[e.rep_id] = rep
    # Release what was held for this rep: routed now, due no earlier than it was.
    stored = ctx.view.held.pop(e.rep_id, [])
    ctx.out.released.extend(n.key for n in stored)
    batch = [n for n in ctx.out.notices if n.recipient == e.rep_id and n.channel == HELD]
    ctx.out.notices = [n for n in ctx.out.notices if n not in batch]
    team = ctx.config.team(rep.team_id)
    route = person_route(rep, team)
    if route is None:
        return  # left, or unreachable: the held notices are dropped
    calendar = ctx.calendars.for_team(rep.team_id)
    for held in [*stored, *batch]:
        ctx.out.notices.append(
            replace(
                held,
                channel=route[0],
                fallbacks=route[1],
                team_id=rep.team_id,
                due_at=send_time(max(ctx.now, held.due_at), calendar),
                coalesce_s=team.coalesce_seconds,
            )
        )


def _accepted(ctx: _Ctx, e: LeadAccepted) -> None:
    facts = {"source": e.source, "priority": e.priority.value}
    for name in ("city", "region", "country", "industry", "product"):
        value = getattr(e, name)
        if value is not None and (clean := plain_text(str(value))):
            facts[name] = clean
    lead = ctx.lead(e.lead_id)
    ctx.out.leads[e.lead_id] = replace(lead, facts={**lead.facts, **facts})


def _assigned(ctx: _Ctx, e: LeadAssigned) -> None:
    lead = ctx.lead(e.lead_id)
    if e.sequence < lead.sequence:
        return  # an older move arriving after a newer one: no notice, no state
    facts = {**lead.facts, "priority": e.priority.value}
    lead = replace(
        lead,
        facts=facts,
        owner_id=e.owner_id,
        team_id=e.team_id,
        sequence=e.sequence,
        assigned_at=e.assigned_at,
        stage="assigned" if lead.stage == "new" else lead.stage,
    )
    ctx.out.leads[e.lead_id] = lead
    key = f"assigned:{e.assignment_id}"
    variables = {"assignment": e.kind.value, "assigned_at": e.assigned_at}
    if e.owner_id is not None and e.kind is not AssignmentKind.POOLED:
        notice = ctx.to_person(
            e.owner_id,
            e.team_id,
            notice_key=key,
            kind="new_lead",
            lead_id=e.lead_id,
            variables=variables,
            origin_at=e.assigned_at,
        )
        if notice is not None:
            ctx.out.notices.append(notice)
        return
    team = ctx.config.team(e.team_id)
    if team.pool_channel is None:
        return
    calendar = ctx.calendars.for_team(e.team_id)
    ctx.out.notices.append(
        Notice(
            notice_key=key,
            recipient=f"team:{e.team_id}",
            channel=team.pool_channel.channel,
            kind="pooled_lead",
            team_id=e.team_id,
            lead_id=e.lead_id,
            payload=_payload("pooled_lead", e.lead_id, lead, team, variables, calendar.zone),
            fallbacks=(),
            origin_at=e.assigned_at,
            due_at=send_time(ctx.now, calendar),
            coalesce_s=team.coalesce_seconds,
        )
    )


def _escalation(ctx: _Ctx, e: EscalationRaised) -> None:
    step = ctx.step(e.escalation_id)
    if e.status is EscalationStatus.FIRING:
        if step is not None:
            return  # seen already (a re-emission after a crash): notified once
        ctx.out.steps[e.escalation_id] = EscalationStep(
            escalation_id=e.escalation_id,
            lead_id=e.lead_id,
            owner_id=e.owner_id,
            team_id=e.team_id,
            action=e.action.value,
            due_at=e.due_at,
            breached_at=e.breached_at,
            status="firing",
        )
        if e.action is EscalationAction.REMIND_OWNER:
            recipient, kind = (
                e.owner_id,
                ("reclaim_warning" if e.kind is EscalationKind.RECLAIM_WARNING else "remind_owner"),
            )
        elif e.action is EscalationAction.NOTIFY_MANAGER:
            recipient, kind = e.manager_id, "notify_manager"
        else:
            # reassign / return_to_pool: assignment acts, leads.assigned tells the new
            # owner; page_oncall: Alertmanager pages (the bridge carries it to chat).
            return
        notice = ctx.to_person(
            recipient,
            e.team_id,
            notice_key=f"escalation:{e.escalation_id}",
            kind=kind,
            lead_id=e.lead_id,
            variables={
                "sla": e.kind.value,
                "level": e.level,
                "owner_id": e.owner_id,
                "due": e.due_at,
                "breached": e.breached_at,
            },
            origin_at=e.breached_at,
        )
        if notice is not None:
            ctx.out.notices.append(notice)
        return
    # Resolved.
    if step is not None and step.status == "resolved":
        return
    ctx.out.steps[e.escalation_id] = EscalationStep(
        escalation_id=e.escalation_id,
        lead_id=e.lead_id,
        owner_id=e.owner_id,
        team_id=e.team_id,
        action=e.action.value,
        due_at=e.due_at,
        breached_at=e.breached_at,
        status="resolved",
        resolved_at=e.occurred_at,
    )
    late = max(0, round((e.occurred_at - e.due_at).total_seconds() / 60))
    # Fired and resolved within one batch: the reminder was never sent, so it is dropped.
    firing_key = f"escalation:{e.escalation_id}"
    ctx.out.notices = [n for n in ctx.out.notices if n.notice_key != firing_key]
    for ref in ctx.view.notified.get(e.escalation_id, []):
        key = (f"escalation:{e.escalation_id}", ref.recipient, ref.channel)
        if ref.status == "pending" and not ref.in_flight:
            # Not sent yet (quiet hours, coalescing): the reminder is moot, drop it.
            ctx.out.cancel_keys.append(key)
            continue
        if ref.status not in ("pending", "sent"):
            continue  # dead or cancelled: nothing reached the person to follow up on
        rep = ctx.rep(ref.recipient)
        team = ctx.config.team(ref.team_id)
        calendar = ctx.calendars.for_team(ref.team_id)
        ctx.out.notices.append(
            Notice(
                notice_key=f"resolved:{e.escalation_id}",
                recipient=ref.recipient,
                channel=ref.channel,
                kind="resolved",
                team_id=ref.team_id,
                lead_id=e.lead_id,
                payload=_payload(
                    "resolved",
                    e.lead_id,
                    ctx.lead(e.lead_id),
                    team,
                    {
                        "sla": e.kind.value,
                        "level": e.level,
                        "late_minutes": late,
                        "due": e.due_at,
                        "resolved": e.occurred_at,
                    },
                    recipient_zone(rep, calendar),
                ),
                fallbacks=ref.fallbacks,
                origin_at=e.occurred_at,
                due_at=send_time(ctx.now, calendar),
                coalesce_s=team.coalesce_seconds,
            )
        )


def _stage(ctx: _Ctx, e: StageChanged) -> None:
    lead = ctx.lead(e.lead_id)
    if lead.stage_at is not None and e.occurred_at < lead.stage_at:
        return  # an older change arriving late
    ctx.out.leads[e.lead_id] = replace(lead, stage=e.stage.value, stage_at=e.occurred_at)
    # Any move cancels the reminders of the stage it left ("unless the lead moved on").
    ctx.out.cancel_node_reminders.append(e.lead_id)
    ctx.out.notices = [
        n for n in ctx.out.notices if not (n.kind == "node_reminder" and n.lead_id == e.lead_id)
    ]
    for reminder in ctx.config.reminders:
        if reminder.stage != e.stage.value:
            continue
        owner = lead.owner_id or e.rep_id
        rep = ctx.rep(owner)
        team_id = rep.team_id if rep is not None else (lead.team_id or "")
        due = node_due(e.occurred_at, reminder, ctx.calendars.for_team(team_id))
        notice = ctx.to_person(
            owner,
            team_id,
            notice_key=f"node:{reminder.name}:{e.event_id}",
            kind="node_reminder",
            lead_id=e.lead_id,
            variables={"node": reminder.name, "stage": e.stage.value, "since": e.occurred_at},
            origin_at=due,
            not_before=due,
        )
        if notice is not None:
            ctx.out.notices.append(notice)


def _review(ctx: _Ctx, e: ReviewPublished) -> None:
    """One "review ready" notice per manager (of ``e.team_id`` when the report is one
    team's), keyed by the event id: announced again, it is not queued twice."""
    managers = {m: set(teams) for m, teams in ctx.view.managers.items()}
    for r in ctx.out.reps.values():  # roster entries earlier in this batch
        if r.manager_id and r.status != RepStatus.LEFT.value:
            managers.setdefault(r.manager_id, set()).add(r.team_id)
    variables = {
        "period": e.period,
        "period_kind": e.kind.value,
        # Periods are UTC dates (the review's); the last day is the one before the end.
        "first_day": e.period_start.date().isoformat(),
        "last_day": (e.period_end - timedelta(days=1)).date().isoformat(),
        "team": e.team_id,
        "leads": e.leads,
        "won": e.won,
        "won_amount": e.won_amount,
        "lost": e.lost,
        "suggestions": list(e.suggestions),
        "where": e.where,
    }
    for manager_id in sorted(managers):
        teams = sorted(managers[manager_id])
        if e.team_id is not None and e.team_id not in teams:
            continue
        notice = ctx.to_person(
            manager_id,
            e.team_id or teams[0],
            notice_key=f"review:{e.event_id}",
            kind="review",
            lead_id=None,
            variables=variables,
            origin_at=e.published_at,
        )
        if notice is not None:
            ctx.out.notices.append(notice)
