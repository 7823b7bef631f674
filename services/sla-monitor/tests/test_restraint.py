"""The restraint on taking steps (``domain.restraint``) and its use in firing, with a
fake monotonic clock: a wall-clock jump holds reassign / return_to_pool for the hold,
reminders still fire, a backlog after an outage is not a jump, and the per-team cap
spreads taking steps over minutes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from leadloop.calendar import CalendarSet
from leadloop.events import EscalationAction, EscalationKind
from leadloop_sla_monitor.domain.firing import Escalator
from leadloop_sla_monitor.domain.ladder import Clock, PolicySet
from leadloop_sla_monitor.domain.restraint import Guard, HoldReason, Restraint

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
H = 3600
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ALWAYS = CalendarSet.model_validate(
    {
        "default": "always",
        "calendars": {"always": {"timezone": "UTC", "weekly": {d: ["00:00-24:00"] for d in DAYS}}},
    }
)
POLICIES = PolicySet.model_validate(
    {
        "policies": [
            {
                "policy_id": "fr",
                "kind": "first_response",
                "limit_seconds": H,
                "ladder": [
                    {"level": 1, "after_seconds": 0, "action": "remind_owner"},
                    {"level": 2, "after_seconds": H, "action": "return_to_pool"},
                    {"level": 3, "after_seconds": 2 * H, "action": "page_oncall"},
                ],
            }
        ]
    }
)
GUARD = Guard(jump_threshold=timedelta(minutes=5), hold=timedelta(minutes=30), per_minute=0)
RETURN = EscalationAction.RETURN_TO_POOL
REMIND = EscalationAction.REMIND_OWNER


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def clock(lead: str, started: datetime, team: str = "team-a") -> Clock:
    return Clock(lead, EscalationKind.FIRST_RESPONSE, "c1", "fr", "rep-a", team, "mgr", started, 1)


def test_a_wall_clock_ahead_of_the_monotonic_one_is_a_jump() -> None:
    r = Restraint(GUARD)
    assert r.observe(at(0), 100.0) is None  # the first reading has nothing to compare
    assert r.observe(at(60), 160.0) is None  # a minute on both clocks
    jump = r.observe(at(6 * H + 61), 161.0)
    assert jump is not None
    assert jump.expected == at(61)
    assert jump.seconds == 6 * H
    assert r.hold_after == at(61)


def test_a_backlog_after_an_outage_is_not_a_jump() -> None:
    """Both clocks advanced (the process waited hours on PostgreSQL): catch-up."""
    r = Restraint(GUARD)
    r.observe(at(0), 0.0)
    assert r.observe(at(6 * H), 6 * H) is None
    assert not r.holding(6 * H)
    # A new process has no reading to compare with: its first tick is never a jump.
    assert Restraint(GUARD).observe(at(6 * H), 5.0) is None


def test_a_drift_under_the_threshold_is_time_passing() -> None:
    r = Restraint(GUARD)
    r.observe(at(0), 0.0)
    assert r.observe(at(300), 1.0) is None
    assert r.observe(at(601), 1.0) is not None


def test_accelerated_time_is_no_jump() -> None:
    r = Restraint(Guard(timedelta(minutes=5), timedelta(minutes=30), 0, rate=1000.0))
    r.observe(at(0), 0.0)
    assert r.observe(at(6 * H), 6 * H / 1000) is None


def test_the_jump_holds_taking_steps_it_made_due_until_the_hold_ends() -> None:
    r = Restraint(GUARD)
    r.observe(at(0), 0.0)
    r.observe(at(6 * H + 1), 1.0)
    gate = r.gate(at(6 * H + 1), 1.0)
    # Due before the jump: fires. Due only because of it: held for 30 minutes.
    assert gate.check("team-a", RETURN, at(0)) is None
    held = gate.check("team-a", RETURN, at(H))
    assert held is not None
    assert held.reason is HoldReason.CLOCK_JUMP
    assert held.until == at(6 * H + 1 + 1800)
    # Reminders, notifications, pages are never held.
    assert gate.check("team-a", REMIND, at(H)) is None
    assert gate.check("team-a", EscalationAction.PAGE_ONCALL, at(H)) is None
    # After the hold (monotonic time), the same step fires.
    later = 1.0 + 1800
    assert r.gate(at(6 * H + later), later).check("team-a", RETURN, at(H)) is None


def test_a_second_jump_during_the_hold_extends_it_and_keeps_the_first_instant() -> None:
    r = Restraint(GUARD)
    r.observe(at(0), 0.0)
    r.observe(at(H + 1), 1.0)
    r.observe(at(3 * H + 2), 2.0)
    assert r.hold_after == at(1)
    assert r.holding(2.0 + 1799)


def test_the_cap_spreads_taking_steps_over_minutes_per_team() -> None:
    r = Restraint(Guard(timedelta(minutes=5), timedelta(minutes=30), per_minute=2))
    r.observe(at(0), 0.0)
    gate = r.gate(at(10), 10.0)
    assert gate.check("team-a", RETURN, at(0)) is None
    assert gate.check("team-a", EscalationAction.REASSIGN, at(0)) is None
    capped = gate.check("team-a", RETURN, at(0))
    assert capped is not None
    assert capped.reason is HoldReason.RATE_CAP
    assert capped.until == at(60)  # the next window of monotonic time
    assert gate.check("team-b", RETURN, at(0)) is None  # per team
    assert gate.check("team-a", REMIND, at(0)) is None  # reminders are not capped
    assert r.gate(at(61), 61.0).check("team-a", RETURN, at(0)) is None


@given(
    seconds=st.lists(st.floats(min_value=0, max_value=3600), min_size=1, max_size=30),
)
def test_a_wall_clock_that_follows_the_monotonic_one_never_jumps(seconds: list[float]) -> None:
    r = Restraint(GUARD)
    mono = 0.0
    for step in seconds:
        mono += step
        assert r.observe(at(mono), mono) is None


def test_firing_after_a_jump_fires_reminders_and_holds_the_reclaim() -> None:
    escalator = Escalator(POLICIES, ALWAYS)
    r = Restraint(GUARD)
    r.observe(at(0), 0.0)
    r.observe(at(6 * H), 1.0)
    due = [clock(f"l{i}", at(-H + 1)) for i in range(3)]
    firing = escalator.fire(due, at(6 * H), r.gate(at(6 * H), 1.0))
    # Each clock's reminder fires; its return_to_pool, due an hour after the instant
    # the wall clock should have read, waits, and the page behind it too.
    assert [e.action for e in firing.events] == [REMIND] * 3
    assert [(h.lead_id, h.reason) for h in firing.held] == [
        (f"l{i}", HoldReason.CLOCK_JUMP) for i in range(3)
    ]
    assert {(a.next_level, a.due_at) for a in firing.advances} == {(2, at(6 * H + 1800))}
    # When the hold is over, the held steps fire in order.
    gate = r.gate(at(6 * H + 1800), 1801.0)
    resumed = [replace(c, next_level=2) for c in due]
    after = escalator.fire(resumed, at(6 * H + 1800), gate)
    assert [e.action for e in after.events] == [RETURN, EscalationAction.PAGE_ONCALL] * 3
    assert after.held == ()


def test_firing_without_a_gate_is_unchanged() -> None:
    firing = Escalator(POLICIES, ALWAYS).fire([clock("l1", at(-H + 1))], at(6 * H))
    assert [e.action for e in firing.events] == [REMIND, RETURN, EscalationAction.PAGE_ONCALL]
    assert firing.held == ()
