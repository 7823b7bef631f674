"""Silent leads: owned and open, and nobody has moved them for N business days.

No event says that a lead went quiet, so the metrics look for it: a sweep reads the
leads that could be silent (``quiet_since``: when an owned, open lead last moved) and
:func:`silences` decides, with the lead's team calendar, which are. Each becomes a
``Silenced`` fact applied like any other, so the ledger stays a function of the stored
facts. A move after ``quiet_since`` ends the silence (``leads.ledger_state``), whatever
the order in which the two arrive.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from leadloop.calendar import CalendarSet, working_day_start
from leadloop_metrics.domain.facts import Silenced
from leadloop_metrics.domain.leads import LeadState, ledger_state

__all__ = ["Quiet", "Silence", "earliest_quiet_since", "quiet_since", "silences"]


@dataclass(frozen=True, slots=True)
class Silence:
    """``days`` business days of the team's calendar without a move make a lead silent."""

    days: int
    calendars: CalendarSet


@dataclass(frozen=True, slots=True)
class Quiet:
    """A lead that could fall silent, as the sweep reads it."""

    lead_id: str
    team: str | None
    quiet_since: datetime


def quiet_since(s: LeadState) -> datetime | None:
    """When the lead last moved, if it can still fall silent (owned, open, not silent)."""
    if ledger_state(s) in ("owned_within_sla", "owned_breached"):
        return s.last_activity_at
    return None


def earliest_quiet_since(now: datetime, days: int) -> datetime:
    """Leads quiet since after this cannot be silent at ``now``: the N-th working day
    after a day begins at least N - 1 whole days after any moment of that day."""
    return now - timedelta(days=max(days - 1, 0))


def silences(quiet: Iterable[Quiet], now: datetime, rule: Silence) -> list[Silenced]:
    """The leads among ``quiet`` that are silent at ``now``, as facts."""
    out: list[Silenced] = []
    for q in quiet:
        calendar = rule.calendars.for_team(q.team or "")
        if working_day_start(q.quiet_since, rule.days, calendar) <= now:
            event_id = f"silence:{q.lead_id}:{q.quiet_since.isoformat()}"
            out.append(Silenced(event_id, q.lead_id, q.quiet_since))
    return out
