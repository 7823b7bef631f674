"""The daily digest: once per working day, each rep gets what is open, due and overdue.

:func:`digest_day` says whether a rep's working day has begun (so the caller knows
which date to make a digest for), :func:`digest_notice` builds the one message. The
caller loads the rep's open leads, steps and node reminders; nothing here reads the
clock or the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

from leadloop.calendar import BusinessCalendar, next_working_instant
from leadloop.events import RepStatus
from leadloop_notifier.domain.config import NotifyConfig
from leadloop_notifier.domain.model import EscalationStep, Lead, Notice, Rep
from leadloop_notifier.domain.routing import local_text, person_route, recipient_zone

__all__ = ["DIGEST_LISTED", "digest_day", "digest_notice"]

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
    zone = recipient_zone(rep, calendar)
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
