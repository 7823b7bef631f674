"""Restraint on the steps that take a lead away from its owner (``reassign``,
``return_to_pool``): a forward jump of the wall clock holds them, and a per-team cap
spreads them out.

A wall clock set hours ahead (a bad NTP source, a VM restored with the host's time, an
operator's typo) makes every clock due in those hours look overdue at once: without
restraint the ticker would take hundreds of leads from reps who did nothing wrong. The
jump is seen by comparing the wall clock with a monotonic one between two ticks: when
the wall clock advanced more than the monotonic clock (times ``rate``) by more than the
threshold, the difference is a jump, not elapsed time. Steps due after the instant the
wall clock should have shown (``hold_after``) became due only because of the jump; for
``hold`` of monotonic time the taking ones among them wait, while reminders,
notifications and pages fire (a person looks, nothing is taken). When the hold ends
they fire — the jump may have been a real correction of a clock that was behind.

A backlog after the monitor itself was down is not a jump: both clocks advanced (a new
process starts with no reading to compare), so the missed steps fire. The cap applies
there too: at most ``per_minute`` taking steps per team per minute of monotonic time,
per worker; the rest are tried again in the next minute. A jump while the process was
not running (or before its first tick) cannot be told from an outage; the cap is what
limits it.

Pure: readings come in (wall time and a monotonic reading), nothing is read here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from leadloop.events import EscalationAction

__all__ = ["TAKING_ACTIONS", "Gate", "Guard", "Held", "HoldReason", "Jump", "Restraint"]

#: Steps that take a lead from its owner; the assignment service acts on them.
TAKING_ACTIONS = frozenset({EscalationAction.REASSIGN, EscalationAction.RETURN_TO_POOL})

#: The cap's window, in seconds of monotonic (service) time.
WINDOW_SECONDS = 60.0


class HoldReason(StrEnum):
    CLOCK_JUMP = "clock_jump"
    RATE_CAP = "rate_cap"


@dataclass(frozen=True, slots=True)
class Guard:
    """The restraint's settings."""

    #: A wall clock ahead of the monotonic one by more than this between ticks is a jump.
    jump_threshold: timedelta
    #: How long taking steps that became due by a jump wait (monotonic time).
    hold: timedelta
    #: Taking steps per team per minute (per worker); 0: no cap.
    per_minute: int
    #: Service seconds per monotonic second (>1 only in accelerated tests).
    rate: float = 1.0


@dataclass(frozen=True, slots=True)
class Jump:
    """A forward jump: the wall clock read ``read`` where it should have read
    ``expected``."""

    expected: datetime
    read: datetime

    @property
    def seconds(self) -> float:
        return (self.read - self.expected).total_seconds()


@dataclass(frozen=True, slots=True)
class Held:
    """A taking step that may not fire now, why, and when to try it again (wall time)."""

    reason: HoldReason
    until: datetime


class Gate:
    """One firing pass's view of the restraint: ``check`` each taking step before it
    fires. Allowed steps use up their team's budget of the current window."""

    def __init__(
        self,
        restraint: Restraint,
        now: datetime,
        mono: float,
    ) -> None:
        self._r = restraint
        self._now = now
        self._mono = mono

    def check(self, team_id: str, action: EscalationAction, due_at: datetime) -> Held | None:
        """None: fire it. Otherwise the step and the rest of its clock's ladder wait."""
        if action not in TAKING_ACTIONS:
            return None
        r = self._r
        if r.holding(self._mono) and r.hold_after is not None and due_at > r.hold_after:
            return Held(HoldReason.CLOCK_JUMP, self._wall_at(r.hold_until_mono))
        cap = r.guard.per_minute
        if cap <= 0:
            return None
        window = math.floor(self._mono * r.guard.rate / WINDOW_SECONDS)
        seen, used = r.budget.get(team_id, (window, 0))
        if seen != window:
            used = 0
        if used >= cap:
            return Held(
                HoldReason.RATE_CAP, self._wall_at((window + 1) * WINDOW_SECONDS / r.guard.rate)
            )
        r.budget[team_id] = (window, used + 1)
        return None

    def _wall_at(self, mono: float) -> datetime:
        """The wall time when the monotonic clock reads ``mono``, if it does not jump."""
        return self._now + timedelta(seconds=max(0.0, mono - self._mono) * self._r.guard.rate)


class Restraint:
    """The state of one worker's restraint: the last reading, the hold of the latest
    jump, and each team's use of the cap in the current window."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self._last: tuple[datetime, float] | None = None
        #: Taking steps due after this wall time wait while ``holding``.
        self.hold_after: datetime | None = None
        self.hold_until_mono = -math.inf
        self.budget: dict[str, tuple[int, int]] = {}

    def observe(self, wall: datetime, mono: float) -> Jump | None:
        """Take a reading (once per tick); return the jump it shows, if any. A jump
        during a hold keeps the earlier ``hold_after`` and extends the hold."""
        last, self._last = self._last, (wall, mono)
        if last is None:
            return None
        expected = last[0] + timedelta(seconds=(mono - last[1]) * self.guard.rate)
        if wall - expected <= self.guard.jump_threshold:
            return None
        if not self.holding(mono) or self.hold_after is None:
            self.hold_after = expected
        self.hold_until_mono = mono + self.guard.hold.total_seconds() / self.guard.rate
        return Jump(expected=expected, read=wall)

    def holding(self, mono: float) -> bool:
        return mono < self.hold_until_mono

    def gate(self, now: datetime, mono: float) -> Gate:
        return Gate(self, now, mono)
