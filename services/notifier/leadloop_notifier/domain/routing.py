"""Where and when a person is told: channel order, quiet hours, node reminders, text.

Shared by the fold and the daily digest: the channel a rep is reached on first (and the
fallbacks), a notice's send time (the next working moment of the team calendar; pages
go at once), when a node reminder is due, the recipient's time zone, and lead facts made
safe for every vendor's markup. Pure: no clock, no I/O.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from leadloop.calendar import BusinessCalendar, due_at, next_working_instant, working_day_start
from leadloop.events import RepStatus
from leadloop_notifier.domain.config import NodeReminder, TeamConfig
from leadloop_notifier.domain.model import Rep

__all__ = [
    "local_text",
    "node_due",
    "person_route",
    "plain_text",
    "recipient_zone",
    "send_time",
]


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
        return working_day_start(start, reminder.after_business_days, calendar)
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


def recipient_zone(rep: Rep | None, calendar: BusinessCalendar) -> ZoneInfo:
    """The zone a recipient reads times in: the rep's own, else the team calendar's
    (also for a zone name this system does not know)."""
    if rep is not None:
        try:
            return ZoneInfo(rep.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return calendar.zone


def local_text(t: datetime, zone: ZoneInfo) -> str:
    """``t`` as a recipient's wall-clock time, to the minute."""
    return t.astimezone(zone).strftime("%Y-%m-%d %H:%M")
