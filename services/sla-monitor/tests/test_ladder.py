"""Escalation ladders: policy shape, which steps are due, and that each fires exactly once."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from leadloop.calendar import BusinessCalendar, Weekday
from leadloop.events import EscalationAction, EscalationKind, EscalationStatus, Stage
from leadloop_sla_monitor.domain.ladder import (
    ROUND_THE_CLOCK,
    Clock,
    LadderStep,
    Policy,
    PolicySet,
    StepDue,
    counts_every_second,
    deadline,
    due_steps,
    escalation_event,
    escalation_id,
    slots_due,
)
from leadloop_sla_monitor.domain.policies import Conditions

START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
ACTIONS = list(EscalationAction)


def policy(offsets: list[float], limit: float = 600, policy_id: str = "fr-hot") -> Policy:
    return Policy(
        policy_id=policy_id,
        kind=EscalationKind.FIRST_RESPONSE,
        limit_seconds=limit,
        ladder=tuple(
            LadderStep(level=i + 1, after_seconds=o, action=ACTIONS[i % len(ACTIONS)])
            for i, o in enumerate(offsets)
        ),
    )


def clock(next_level: int = 1, *, cycle: str = "c1", lead_id: str = "lead-1", **kw: Any) -> Clock:
    fields: dict[str, Any] = {
        "lead_id": lead_id,
        "kind": EscalationKind.FIRST_RESPONSE,
        "cycle": cycle,
        "policy_id": "fr-hot",
        "owner_id": "rep-1",
        "team_id": "north",
        "manager_id": "mgr-1",
        "started_at": START,
        "next_level": next_level,
    }
    fields.update(kw)
    return Clock(**fields)


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


# A 10-minute first-response limit; remind at the deadline, manager 5 min later,
# reassign at 30 min, page on-call at 60 min.
LADDER = policy([0, 300, 1800, 3600])


# --- policy validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("levels", "offsets", "message"),
    [
        ([2, 3], [0, 60], "levels must be 1..n"),
        ([1, 3], [0, 60], "levels must be 1..n"),
        ([2, 1], [0, 60], "levels must be 1..n"),
        ([1, 1], [0, 60], "levels must be 1..n"),
        ([1, 2, 3], [0, 120, 60], "offsets must not decrease"),
    ],
)
def test_ladders_out_of_order_are_refused(
    levels: list[int], offsets: list[float], message: str
) -> None:
    steps = [
        {"level": lvl, "after_seconds": off, "action": "remind_owner"}
        for lvl, off in zip(levels, offsets, strict=True)
    ]
    with pytest.raises(ValidationError, match=message):
        Policy.model_validate(
            {"policy_id": "p", "kind": "first_response", "limit_seconds": 60, "ladder": steps}
        )


@pytest.mark.parametrize(
    "change",
    [
        {"limit_seconds": 0},
        {"limit_seconds": -5},
        {"ladder": []},
        {"ladder": [{"level": 0, "after_seconds": 0, "action": "remind_owner"}]},
        {"ladder": [{"level": 1, "after_seconds": -1, "action": "remind_owner"}]},
        {"ladder": [{"level": 1, "after_seconds": 0, "action": "send_flowers"}]},
        {"kind": "whenever"},
    ],
)
def test_invalid_policy_fields_are_refused(change: dict[str, Any]) -> None:
    spec: dict[str, Any] = {
        "policy_id": "p",
        "kind": "first_response",
        "limit_seconds": 60,
        "ladder": [{"level": 1, "after_seconds": 0, "action": "remind_owner"}],
    }
    with pytest.raises(ValidationError):
        Policy.model_validate({**spec, **change})


def test_equal_offsets_are_allowed_and_step_lookup_is_bounded() -> None:
    p = policy([0, 0, 60])
    assert [s.level for s in p.ladder] == [1, 2, 3]
    assert p.step(0) is None
    assert p.step(4) is None
    step = p.step(2)
    assert step is not None
    assert step.level == 2


def test_policy_set_lookups() -> None:
    stall = Policy(
        policy_id="stall",
        kind=EscalationKind.STAGE_STALL,
        when=Conditions(stage=frozenset({Stage.PROPOSAL})),
        limit_seconds=86400,
        ladder=(LadderStep(level=1, after_seconds=0, action=EscalationAction.NOTIFY_MANAGER),),
    )
    policies = PolicySet(policies=(stall, LADDER))
    assert policies.first_response() is LADDER
    assert policies.by_id("stall") is stall


# --- due steps --------------------------------------------------------------------------


def test_nothing_is_due_before_the_deadline() -> None:
    assert deadline(START, LADDER) == at(600)
    for now in (START, at(1), at(599.999)):
        assert due_steps(clock(), LADDER, now) == ([], at(600))


def test_a_step_fires_at_exactly_its_due_time() -> None:
    fired, next_at = due_steps(clock(), LADDER, at(600))
    assert fired == [StepDue(level=1, action=ACTIONS[0], due_at=at(600))]
    assert next_at == at(900)


def test_every_step_due_by_now_fires_in_order_once() -> None:
    fired, next_at = due_steps(clock(), LADDER, at(2500))
    assert [(s.level, s.due_at) for s in fired] == [(1, at(600)), (2, at(900)), (3, at(2400))]
    assert [s.action for s in fired] == [s.action for s in LADDER.ladder[:3]]
    assert next_at == at(4200)
    fired, next_at = due_steps(clock(), LADDER, at(10**6))
    assert [s.level for s in fired] == [1, 2, 3, 4]
    assert next_at is None


def test_equal_offsets_fire_together() -> None:
    p = policy([0, 0, 0])
    fired, next_at = due_steps(clock(), p, at(600))
    assert [s.level for s in fired] == [1, 2, 3]
    assert next_at is None


@pytest.mark.parametrize("k", [2, 3, 4])
def test_a_clock_restarted_at_level_k_never_refires_earlier_levels(k: int) -> None:
    fired, _ = due_steps(clock(next_level=k), LADDER, at(10**6))
    assert [s.level for s in fired] == list(range(k, 5))


def test_an_exhausted_clock_fires_nothing() -> None:
    assert due_steps(clock(next_level=5), LADDER, at(10**6)) == ([], None)


def test_resuming_mid_ladder_reports_the_next_due_time_of_that_level() -> None:
    assert due_steps(clock(next_level=3), LADDER, at(1000)) == ([], at(2400))


# --- properties -------------------------------------------------------------------------

offsets_lists = st.lists(
    st.floats(min_value=0, max_value=7 * 86400, allow_nan=False), min_size=1, max_size=6
).map(sorted)
policies = st.builds(
    policy, offsets_lists, st.floats(min_value=0.001, max_value=7 * 86400, allow_nan=False)
)
# Seconds after the clock started at which the worker happened to run.
tick_gaps = st.lists(st.floats(min_value=0, max_value=3 * 86400, allow_nan=False), max_size=15)


@settings(max_examples=300)
@given(policies, tick_gaps, st.integers(1, 3))
def test_firing_incrementally_equals_firing_once_at_the_end(
    p: Policy, gaps: list[float], start_level: int
) -> None:
    c = clock(next_level=start_level)
    now = START
    incremental: list[StepDue] = []
    for gap in gaps:
        now += timedelta(seconds=gap)
        fired, next_at = due_steps(c, p, now)
        assert all(s.due_at <= now for s in fired)
        # Nothing left behind: the next step is due strictly later (or there is none).
        assert next_at is None or next_at > now
        incremental.extend(fired)
        c = replace(c, next_level=c.next_level + len(fired))
    once, _ = due_steps(clock(next_level=start_level), p, now)
    assert incremental == once
    levels = [s.level for s in incremental]
    assert levels == list(range(start_level, start_level + len(levels)))
    assert all(level >= start_level for level in levels)
    assert [s.due_at for s in incremental] == sorted(s.due_at for s in incremental)


@settings(max_examples=200)
@given(policies, st.floats(min_value=0, max_value=30 * 86400, allow_nan=False))
def test_exactly_the_steps_due_by_now_fire(p: Policy, elapsed: float) -> None:
    now = START + timedelta(seconds=elapsed)
    fired, next_at = due_steps(clock(), p, now)
    limit = deadline(START, p)

    def due(step: LadderStep) -> datetime:
        # A step is due limit + offset after the start, summed before rounding to µs.
        return START + timedelta(seconds=p.limit_seconds + step.after_seconds)

    expected = [s for s in p.ladder if due(s) <= now]  # offsets sorted: a prefix is due
    assert [s.level for s in fired] == [s.level for s in expected]
    if now < limit:
        assert fired == []
    if len(fired) < len(p.ladder):
        assert next_at == due(p.ladder[len(fired)])
    else:
        assert next_at is None


# --- escalation ids and events ----------------------------------------------------------


def test_escalation_ids_are_deterministic_and_distinct_per_level_cycle_lead_and_policy() -> None:
    base = clock()
    assert escalation_id(base, 1) == escalation_id(clock(), 1)
    ids = {
        escalation_id(base, 1),
        escalation_id(base, 2),
        escalation_id(clock(cycle="c2"), 1),
        escalation_id(clock(lead_id="lead-2"), 1),
        escalation_id(clock(policy_id="fr-warm"), 1),
    }
    assert len(ids) == 5
    # The owner, start time or progress of the clock do not change the id.
    assert escalation_id(clock(owner_id="rep-9", next_level=3, started_at=at(5)), 1) == (
        escalation_id(base, 1)
    )


@settings(max_examples=100)
@given(
    st.lists(
        st.tuples(st.text(max_size=5), st.integers(1, 10)), min_size=2, max_size=10, unique=True
    )
)
def test_escalation_ids_never_collide_across_cycles_and_levels(
    pairs: list[tuple[str, int]],
) -> None:
    ids = [escalation_id(clock(cycle=cycle), level) for cycle, level in pairs]
    assert len(set(ids)) == len(ids)


def test_escalation_events_for_firing_and_resolved_share_the_escalation_id() -> None:
    c = clock()
    (step, *_), _ = due_steps(c, LADDER, at(700))
    firing = escalation_event(
        c, step, EscalationStatus.FIRING, breached_at=at(600), occurred_at=at(700)
    )
    resolved = escalation_event(
        c, step, EscalationStatus.RESOLVED, breached_at=at(600), occurred_at=at(800)
    )
    assert firing.escalation_id == resolved.escalation_id == escalation_id(c, 1)
    assert firing.event_id != resolved.event_id
    again = escalation_event(
        c, step, EscalationStatus.FIRING, breached_at=at(600), occurred_at=at(999)
    )
    assert again.event_id == firing.event_id  # a redelivery is recognisable
    assert (firing.level, firing.action, firing.due_at) == (1, step.action, at(600))
    assert (firing.lead_id, firing.owner_id, firing.team_id, firing.manager_id) == (
        "lead-1",
        "rep-1",
        "north",
        "mgr-1",
    )
    assert (firing.policy_id, firing.kind) == ("fr-hot", EscalationKind.FIRST_RESPONSE)


def test_ladder_steps_count_business_time_of_the_teams_calendar() -> None:
    """Friday 17:55 in Shanghai, a 15-minute limit: due Monday 09:10, and a step 30
    business minutes later is due Monday 09:40 — not over the weekend."""
    from pathlib import Path

    import yaml

    from leadloop.calendar import BusinessCalendar
    from leadloop_sla_monitor.domain.ladder import step_due_at

    config = yaml.safe_load(Path("config/calendars.yaml").read_text(encoding="utf-8"))
    office = BusinessCalendar.model_validate(
        {**config["calendars"]["cn-default"], "holidays": [], "workdays": {}}
    )
    policy = Policy.model_validate(
        {
            "policy_id": "fr",
            "kind": "first_response",
            "limit_seconds": 15 * 60,
            "ladder": [
                {"level": 1, "after_seconds": 0, "action": "remind_owner"},
                {"level": 2, "after_seconds": 30 * 60, "action": "notify_manager"},
            ],
        }
    )
    shanghai = timezone(timedelta(hours=8))
    friday = datetime(2025, 3, 7, 17, 55, tzinfo=shanghai)
    c = Clock(
        lead_id="l",
        kind=EscalationKind.FIRST_RESPONSE,
        cycle="a",
        policy_id="fr",
        owner_id="r",
        team_id="team-cn",
        manager_id=None,
        started_at=friday,
        next_level=1,
    )
    assert step_due_at(c, policy, 1, office) == datetime(2025, 3, 10, 9, 10, tzinfo=shanghai)
    assert step_due_at(c, policy, 2, office) == datetime(2025, 3, 10, 9, 40, tzinfo=shanghai)
    saturday_noon = datetime(2025, 3, 8, 12, 0, tzinfo=shanghai)
    assert due_steps(c, policy, saturday_noon, office)[0] == []


def _every_day(zone: str, **changes: Any) -> BusinessCalendar:
    return BusinessCalendar.model_validate(
        {
            "timezone": zone,
            "weekly": {day.value: ["00:00-24:00"] for day in Weekday},
            **changes,
        }
    )


def test_only_a_calendar_open_every_second_takes_the_plain_sum() -> None:
    assert counts_every_second(ROUND_THE_CLOCK)
    assert counts_every_second(_every_day("Europe/Berlin"))
    assert not counts_every_second(_every_day("UTC", holidays=["2025-05-01"]))
    assert not counts_every_second(_every_day("UTC", workdays={"2025-05-03": ["09:00-12:00"]}))
    weekdays = {day.value: ["00:00-24:00"] for day in Weekday if day is not Weekday.SUNDAY}
    assert not counts_every_second(
        BusinessCalendar.model_validate({"timezone": "UTC", "weekly": weekdays})
    )
    short = {day.value: ["00:00-23:59"] for day in Weekday}
    assert not counts_every_second(
        BusinessCalendar.model_validate({"timezone": "UTC", "weekly": short})
    )


@settings(max_examples=200, deadline=None)
@given(
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Shanghai"]),
    start_s=st.integers(min_value=0, max_value=3 * 365 * 86400),
    elapsed=st.floats(min_value=0, max_value=40 * 86400, allow_nan=False),
    promised=st.booleans(),
)
def test_the_plain_sum_fires_what_the_calendar_walk_fires(
    zone: str, start_s: int, elapsed: float, promised: bool
) -> None:
    """The ticker's shortcut for calendars open around the clock (offset changes and
    all) gives the same steps and next due time as the business-time walk."""
    cal = _every_day(zone)
    assert counts_every_second(cal)
    p = policy([0, 300, 3600, 86400 * 3])
    started = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=start_s)
    promise = started + timedelta(hours=5) if promised else None
    now = started + timedelta(seconds=elapsed)
    for level in (1, 2, 4):
        walk = slots_due(p.schedule, p.limit_seconds, started, promise, level, now, cal)
        plain = slots_due(p.schedule, p.limit_seconds, started, promise, level, now, None)
        assert plain == walk
