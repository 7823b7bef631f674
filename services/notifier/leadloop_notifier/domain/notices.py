"""Who is told what, through which channel, and when: input events become notices.

``fold`` applies a batch of input events, in order, to the notifier's view of the world
(the roster, the leads it has seen, the escalation steps) and returns the changes to
persist: state upserts, notices (outbox rows) and pending notices to cancel. Pure: time
comes in as ``now``, state as a ``View`` loaded by the caller.

A notice's send time is the next working moment of the recipient's team calendar
(quiet hours); only page-level notices (the Alertmanager bridge) go at once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from leadloop.calendar import BusinessCalendar, CalendarSet, due_at, next_working_instant
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
    Stage,
    StageChanged,
)
from leadloop_notifier.domain.config import NodeReminder, NotifyConfig, TeamConfig

__all__ = [
    "CLOSED_STAGES",
    "HELD",
    "KINDS",
    "LEAD_FACTS",
    "Changes",
    "EscalationStep",
    "Input",
    "Lead",
    "Notice",
    "OutboxRef",
    "Rep",
    "View",
    "alert_notice",
    "fold",
    "node_due",
    "person_route",
    "plain_text",
    "send_time",
]

Input = LeadAccepted | LeadAssigned | EscalationRaised | StageChanged | RepUpdated

#: Notice kinds: a closed list (metric label values, template names).
KINDS = (
    "new_lead",
    "pooled_lead",
    "remind_owner",
    "reclaim_warning",
    "notify_manager",
    "resolved",
    "node_reminder",
    "digest",
    "alert",
)
#: Lead facts a notice may show: leads.accepted's routing attributes, none of them
#: personal. Company, email and phone are never read by the notifier; the name only at
#: send time for a team with ``include_name`` (never into a payload or the outbox).
LEAD_FACTS = ("source", "city", "region", "country", "industry", "product", "priority")
CLOSED_STAGES = frozenset({Stage.WON.value, Stage.LOST.value})
#: The channel of a notice held for a rep the roster does not know yet (never sent).
HELD = ""


@dataclass(frozen=True, slots=True)
class Rep:
    rep_id: str
    team_id: str
    manager_id: str | None
    status: str
    timezone: str
    contacts: Mapping[str, str]
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Lead:
    lead_id: str
    facts: Mapping[str, str]
    owner_id: str | None = None
    team_id: str | None = None
    sequence: int = -1
    assigned_at: datetime | None = None
    stage: str = "new"
    stage_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EscalationStep:
    escalation_id: str
    lead_id: str
    owner_id: str | None
    team_id: str
    action: str
    due_at: datetime
    breached_at: datetime
    status: str
    resolved_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OutboxRef:
    """An existing outbox row of a firing step: what a resolution needs to know."""

    recipient: str
    channel: str
    status: str  # pending | sent | dead | cancelled
    in_flight: bool  # leased by a sender right now
    fallbacks: tuple[str, ...]
    team_id: str


@dataclass(frozen=True, slots=True)
class Notice:
    """One outbox row: a notice for one recipient on one channel."""

    notice_key: str
    recipient: str
    channel: str
    kind: str
    team_id: str
    lead_id: str | None
    payload: Mapping[str, Any]
    fallbacks: tuple[str, ...]
    origin_at: datetime
    due_at: datetime
    coalesce_s: float

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.notice_key, self.recipient, self.channel)


@dataclass
class View:
    """The state a batch needs, loaded by the caller (missing entries: not seen yet)."""

    reps: dict[str, Rep] = field(default_factory=dict)
    leads: dict[str, Lead] = field(default_factory=dict)
    steps: dict[str, EscalationStep] = field(default_factory=dict)
    #: escalation_id -> the outbox rows of its firing notice.
    notified: dict[str, list[OutboxRef]] = field(default_factory=dict)
    #: rep_id -> notices held for that rep (not in the roster when they were made).
    held: dict[str, list[Notice]] = field(default_factory=dict)


@dataclass
class Changes:
    reps: dict[str, Rep] = field(default_factory=dict)
    leads: dict[str, Lead] = field(default_factory=dict)
    steps: dict[str, EscalationStep] = field(default_factory=dict)
    notices: list[Notice] = field(default_factory=list)
    #: Pending rows to cancel: exact keys, ...
    cancel_keys: list[tuple[str, str, str]] = field(default_factory=list)
    #: ... and every pending node reminder of these leads (the lead moved on).
    cancel_node_reminders: list[str] = field(default_factory=list)
    #: Held rows now routed to a channel (replaced by the routed notices).
    released: list[tuple[str, str, str]] = field(default_factory=list)


# --- routing helpers ---------------------------------------------------------------------


def person_route(rep: Rep | None, team: TeamConfig) -> tuple[str, tuple[str, ...]] | None:
    """The channel a rep is reached on first, and the ones left for fallback, in the
    team's order, among those the rep has an address for. None: unreachable or left."""
    if rep is None or rep.status == RepStatus.LEFT.value:
        return None
    usable = tuple(c for c in team.person_channels if rep.contacts.get(c))
    if not usable:
        return None
    return usable[0], usable[1:]


def send_time(at: datetime, calendar: BusinessCalendar, *, page: bool = False) -> datetime:
    """Quiet hours: ``at`` itself for a page, else the next working moment from ``at``."""
    return at if page else next_working_instant(at, calendar)


def node_due(start: datetime, reminder: NodeReminder, calendar: BusinessCalendar) -> datetime:
    """When a node reminder for a lead that entered ``reminder.stage`` at ``start`` is due.

    Business hours count working time; business days mean the start of the N-th working
    day after the day of ``start`` (local dates of the calendar); calendar days are added
    and then the next working moment is taken.
    """
    if reminder.after_business_hours is not None:
        return due_at(start, reminder.after_business_hours * 3600, calendar)
    if reminder.after_business_days is not None:
        zone = calendar.zone
        day = start.astimezone(zone).date()
        left = reminder.after_business_days
        while left:
            day += timedelta(days=1)
            if calendar.hours_on(day):
                left -= 1
        first = calendar.hours_on(day)[0].start
        local = datetime.combine(day, time(), tzinfo=zone) + timedelta(seconds=first)
        return next_working_instant(local, calendar)
    if reminder.after_days is not None:
        return next_working_instant(start + timedelta(days=reminder.after_days), calendar)
    return next_working_instant(start, calendar)


#: Characters a lead fact keeps: letters and digits of any script, spaces and plain
#: punctuation. Lead facts come from web forms; in a chat message's markdown ``<@all>``
#: would mention everyone and ``[text](url)`` would hide a link.
_UNSAFE = re.compile(r"[^\w\s\-.,/&'·]|_")
_FACT_CHARS = 64


def plain_text(value: str) -> str:
    """``value`` with markup characters removed and whitespace collapsed, at most 64
    characters: safe in text, markdown and HTML of every vendor."""
    return " ".join(_UNSAFE.sub(" ", value).split())[:_FACT_CHARS]


def _zone(rep: Rep | None, calendar: BusinessCalendar) -> ZoneInfo:
    if rep is not None:
        try:
            return ZoneInfo(rep.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return calendar.zone


def local_text(t: datetime, zone: ZoneInfo) -> str:
    return t.astimezone(zone).strftime("%Y-%m-%d %H:%M")


# --- the fold ------------------------------------------------------------------------------


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
                _zone(rep, calendar),
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
                    _zone(rep, calendar),
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


# --- the Alertmanager bridge -----------------------------------------------------------------

#: At most this many alerts are listed in one chat message (the rest are counted).
MAX_ALERTS_LISTED = 20


def alert_notice(
    route_name: str,
    channel: str,
    body: Mapping[str, Any],
    now: datetime,
) -> Notice:
    """One chat message for one Alertmanager webhook notification (payload v4).

    Deduplicated on (groupKey, status, the alerts' fingerprints): Alertmanager repeats a
    notification (its retries, ``repeat_interval``, an HA pair) with the same key. Not
    subject to quiet hours: it is what pages.
    """
    status = str(body.get("status", "firing"))
    alerts = [a for a in body.get("alerts", []) if isinstance(a, Mapping)]
    fingerprints = sorted(str(a.get("fingerprint", "")) for a in alerts)
    digest = hashlib.sha256(
        "\x1f".join([str(body.get("groupKey", "")), status, *fingerprints]).encode()
    ).hexdigest()[:32]
    listed = []
    for alert in alerts[:MAX_ALERTS_LISTED]:
        labels = alert.get("labels")
        labels = labels if isinstance(labels, Mapping) else {}
        notes = alert.get("annotations")
        notes = notes if isinstance(notes, Mapping) else {}
        listed.append(
            {
                "status": str(alert.get("status", status)),
                "alertname": str(labels.get("alertname", "")),
                "severity": str(labels.get("severity", "")),
                "team": str(labels.get("team", "")),
                "lead_id": str(labels.get("lead_id", "")),
                "summary": str(notes.get("summary", notes.get("description", "")))[:300],
                # Alert text is the operators' own (rule annotations), kept as written;
                # HTML is escaped by the template, and robots get plain text or markdown.
                "starts_at": str(alert.get("startsAt", "")),
            }
        )
    return Notice(
        notice_key=f"alert:{digest}",
        recipient=f"alert:{route_name}",
        channel=channel,
        kind="alert",
        team_id=route_name,
        lead_id=None,
        payload={
            "kind": "alert",
            "status": status,
            "alerts": listed,
            "more": max(0, len(alerts) - MAX_ALERTS_LISTED),
        },
        fallbacks=(),
        origin_at=now,
        due_at=now,
        coalesce_s=0,
    )


# --- the daily digest ----------------------------------------------------------------------

#: Entries listed per section of a digest (the counts say how many there are in all): a
#: digest must fit one chat message.
DIGEST_LISTED = 8


def digest_day(rep: Rep, calendar: BusinessCalendar, now: datetime) -> date | None:
    """The local date whose working day has begun for ``rep`` by ``now`` and not ended;
    None outside working days (a digest is made once per date, at or after its start)."""
    local = now.astimezone(calendar.zone)
    day = local.date()
    hours = calendar.hours_on(day)
    if not hours or rep.status != RepStatus.ACTIVE.value:
        return None
    start = datetime.combine(day, time(), tzinfo=calendar.zone) + timedelta(seconds=hours[0].start)
    end = datetime.combine(day, time(), tzinfo=calendar.zone) + timedelta(seconds=hours[-1].end)
    if not next_working_instant(start, calendar) <= now < end:
        return None
    return day


def digest_notice(
    rep: Rep,
    day: date,
    open_leads: Sequence[Lead],
    overdue: Sequence[EscalationStep],
    due_today: Sequence[tuple[str, datetime]],
    config: NotifyConfig,
    calendar: BusinessCalendar,
    now: datetime,
) -> Notice | None:
    """The digest of ``rep`` for ``day``: open leads (assigned, not won or lost), what is
    due today (node reminders), what is overdue (firing, unresolved steps). None when
    there is nothing to say or no way to reach the rep."""
    if not open_leads and not overdue and not due_today:
        return None
    team = config.team(rep.team_id)
    route = person_route(rep, team)
    if route is None:
        return None
    zone = _zone(rep, calendar)
    link = team.crm_link
    payload: dict[str, Any] = {
        "kind": "digest",
        "lead_id": None,
        "date": day.isoformat(),
        "open_count": len(open_leads),
        "overdue_count": len(overdue),
        "due_today_count": len(due_today),
        "open": [
            {
                "lead_id": lead.lead_id,
                "stage": lead.stage,
                "priority": lead.facts.get("priority"),
                "city": lead.facts.get("city"),
                "source": lead.facts.get("source"),
                "crm_link": link.replace("{lead_id}", lead.lead_id),
            }
            for lead in sorted(open_leads, key=lambda lead: lead.lead_id)[:DIGEST_LISTED]
        ],
        "overdue": [
            {
                "lead_id": s.lead_id,
                "due": local_text(s.due_at, zone),
                "crm_link": link.replace("{lead_id}", s.lead_id),
            }
            for s in sorted(overdue, key=lambda s: (s.due_at, s.lead_id))[:DIGEST_LISTED]
        ],
        "due_today": [
            {"lead_id": lead_id, "due": local_text(t, zone)}
            for lead_id, t in sorted(due_today, key=lambda x: (x[1], x[0]))[:DIGEST_LISTED]
        ],
        "timezone": zone.key,
    }
    return Notice(
        notice_key=f"digest:{rep.rep_id}:{day.isoformat()}",
        recipient=rep.rep_id,
        channel=route[0],
        kind="digest",
        team_id=rep.team_id,
        lead_id=None,
        payload=payload,
        fallbacks=route[1],
        origin_at=now,
        due_at=now,
        coalesce_s=0,
    )
