"""Policy conditions, schedules with reclaim warnings, follow-up promises, on-call alert
payloads and retry backoff: the pure parts of sla-monitor's policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from leadloop.clock import ScaledClock
from leadloop.events import (
    EscalationAction,
    EscalationKind,
    EscalationStatus,
    Priority,
    Stage,
)
from leadloop_sla_monitor.domain.alerts import ALERT_NAME, Alerting, alert_payload, retry_delay
from leadloop_sla_monitor.domain.ladder import (
    Clock,
    Policy,
    PolicySet,
    due_steps,
    escalation_event,
    escalation_id,
    fired_steps,
    follow_up_timing,
)
from leadloop_sla_monitor.domain.policies import Conditions, LeadFacts

START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def spec(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "policy_id": "p",
        "kind": "first_response",
        "limit_seconds": 600,
        "ladder": [{"level": 1, "after_seconds": 0, "action": "remind_owner"}],
    }
    return {**base, **kw}


def clock(policy: Policy, **kw: Any) -> Clock:
    fields: dict[str, Any] = {
        "lead_id": "lead-1",
        "kind": policy.kind,
        "cycle": "c1",
        "policy_id": policy.policy_id,
        "owner_id": "rep-1",
        "team_id": "north",
        "manager_id": "mgr-1",
        "started_at": START,
        "next_level": 1,
    }
    return Clock(**{**fields, **kw})


# --- conditions -------------------------------------------------------------------------

facts = st.builds(
    LeadFacts,
    priority=st.none() | st.sampled_from(list(Priority)),
    source=st.none() | st.sampled_from(["web", "lead_ads", "wechat"]),
    team_id=st.none() | st.sampled_from(["north", "south"]),
    stage=st.none() | st.sampled_from(list(Stage)),
)
value_sets = st.none() | st.frozensets(st.sampled_from(["web", "lead_ads", "wechat"]), min_size=1)


@settings(max_examples=300)
@given(
    facts,
    st.none() | st.frozensets(st.sampled_from(list(Priority)), min_size=1),
    value_sets,
    st.none() | st.frozensets(st.sampled_from(["north", "south"]), min_size=1),
    st.none() | st.frozensets(st.sampled_from(list(Stage)), min_size=1),
)
def test_a_lead_is_covered_exactly_when_every_listed_condition_holds(
    lead: LeadFacts,
    priority: frozenset[Priority] | None,
    source: frozenset[str] | None,
    team: frozenset[str] | None,
    stage: frozenset[Stage] | None,
) -> None:
    cond = Conditions(priority=priority, source=source, team=team, stage=stage)
    expected = all(
        allowed is None or (value is not None and value in allowed)
        for allowed, value in (
            (priority, lead.priority),
            (source, lead.source),
            (team, lead.team_id),
            (stage, lead.stage),
        )
    )
    assert cond.matches(lead) is expected
    assert Conditions().matches(lead)  # no conditions: every lead


def test_the_first_policy_of_a_kind_that_covers_the_lead_is_chosen() -> None:
    policies = PolicySet.model_validate(
        {
            "policies": [
                spec(policy_id="stall", kind="stage_stall", when={"stage": ["proposal"]}),
                spec(policy_id="hot-ads", when={"priority": ["hot"], "source": ["lead_ads"]}),
                spec(policy_id="hot", when={"priority": ["hot"]}),
                spec(policy_id="rest"),
            ]
        }
    )
    fr = EscalationKind.FIRST_RESPONSE
    hot_ads = LeadFacts(priority=Priority.HOT, source="lead_ads")
    assert policies.select(fr, hot_ads).policy_id == "hot-ads"  # type: ignore[union-attr]
    hot_web = LeadFacts(priority=Priority.HOT, source="web")
    assert policies.select(fr, hot_web).policy_id == "hot"  # type: ignore[union-attr]
    # The source is unknown yet: a condition on it does not hold.
    hot_unknown = LeadFacts(priority=Priority.HOT)
    assert policies.select(fr, hot_unknown).policy_id == "hot"  # type: ignore[union-attr]
    assert policies.select(fr, LeadFacts()).policy_id == "rest"  # type: ignore[union-attr]
    stall = EscalationKind.STAGE_STALL
    assert policies.select(stall, LeadFacts(stage=Stage.QUALIFIED)) is None
    assert policies.select(EscalationKind.FOLLOW_UP, hot_ads) is None


@pytest.mark.parametrize(
    ("policies", "message"),
    [
        ([spec(), spec()], "policy ids used twice"),
        ([spec(kind="stage_stall")], "must name when.stage"),
        ([spec(kind="reclaim_warning")], "not a clock kind"),
        ([spec(when={"priority": ["scorching"]})], "priority"),
        ([spec(when={"colour": ["red"]})], "colour"),
        (
            [
                spec(
                    ladder=[
                        {
                            "level": 1,
                            "after_seconds": 0,
                            "action": "remind_owner",
                            "warn_before_seconds": 60,
                        }
                    ]
                )
            ],
            "only for a return_to_pool",
        ),
        (
            [
                spec(
                    ladder=[
                        {
                            "level": 1,
                            "after_seconds": 0,
                            "action": "return_to_pool",
                            "warn_before_seconds": 601,
                        }
                    ]
                )
            ],
            "before the clock starts",
        ),
    ],
)
def test_invalid_policy_files_are_refused(policies: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PolicySet.model_validate({"policies": policies})


def test_the_shipped_policy_file_is_valid() -> None:
    config = yaml.safe_load(Path("config/sla.yaml").read_text(encoding="utf-8"))
    policies = PolicySet.model_validate(config)
    assert {p.kind for p in policies.policies} == {
        EscalationKind.FIRST_RESPONSE,
        EscalationKind.FOLLOW_UP,
        EscalationKind.STAGE_STALL,
    }
    assert policies.alerting.actions == {EscalationAction.PAGE_ONCALL}


# --- schedules with reclaim warnings ----------------------------------------------------

ladders = st.lists(
    st.tuples(
        st.integers(0, 5 * 86400),
        st.sampled_from(list(EscalationAction)),
        st.none() | st.integers(1, 86400),
    ),
    min_size=1,
    max_size=6,
).map(lambda steps: sorted(steps, key=lambda s: s[0]))


def build(ladder: list[tuple[int, EscalationAction, int | None]], limit: int) -> Policy:
    steps = []
    for i, (after, action, warn) in enumerate(ladder, start=1):
        step: dict[str, Any] = {"level": i, "after_seconds": after, "action": action.value}
        if action is EscalationAction.RETURN_TO_POOL and warn is not None:
            step["warn_before_seconds"] = min(warn, limit + after)
        steps.append(step)
    return Policy.model_validate(spec(limit_seconds=limit, ladder=steps))


@settings(max_examples=300)
@given(ladders, st.integers(1, 86400), st.lists(st.integers(0, 3 * 86400), max_size=8))
def test_every_step_and_warning_fires_once_in_due_order_whatever_the_ticks(
    ladder: list[tuple[int, EscalationAction, int | None]], limit: int, ticks: list[int]
) -> None:
    policy = build(ladder, limit)
    c = clock(policy)
    now, fired = START, []
    for gap in [*ticks, 10 * 86400]:
        now += timedelta(seconds=gap)
        steps, next_at = due_steps(c, policy, now)
        assert next_at is None or next_at > now
        fired.extend(steps)
        c = Clock(
            **{
                **{f: getattr(c, f) for f in Clock.__slots__},
                "next_level": c.next_level + len(steps),
            }
        )
    assert [s.due_at for s in fired] == sorted(s.due_at for s in fired)
    assert sorted(s.level for s in fired if not s.warning) == list(range(1, len(ladder) + 1))
    warned = [s.level for s in fired if s.warning]
    assert len(warned) == len(set(warned))
    for s in fired:
        if s.warning:
            step = policy.ladder[s.level - 1]
            assert step.action is EscalationAction.RETURN_TO_POOL
            assert step.warn_before_seconds is not None
            assert s.action is EscalationAction.REMIND_OWNER  # never acted on as a reclaim
            own = next(f for f in fired if f.level == s.level and not f.warning)
            assert own.due_at - s.due_at == timedelta(seconds=step.warn_before_seconds)
            assert fired.index(s) < fired.index(own)
    assert fired_steps(c, policy) == fired
    ids = {escalation_id(c, s.level, warning=s.warning) for s in fired}
    assert len(ids) == len(fired)


def test_a_warning_is_a_reclaim_warning_escalation_with_its_own_id() -> None:
    policy = Policy.model_validate(
        spec(
            ladder=[
                {"level": 1, "after_seconds": 0, "action": "remind_owner"},
                {
                    "level": 2,
                    "after_seconds": 3600,
                    "action": "return_to_pool",
                    "warn_before_seconds": 900,
                },
            ]
        )
    )
    c = clock(policy)
    steps, _ = due_steps(c, policy, at(600 + 3600))
    assert [(s.level, s.warning, s.due_at) for s in steps] == [
        (1, False, at(600)),
        (2, True, at(600 + 2700)),
        (2, False, at(600 + 3600)),
    ]
    warning = escalation_event(
        c, steps[1], EscalationStatus.FIRING, breached_at=at(3300), occurred_at=at(3300)
    )
    assert warning.kind is EscalationKind.RECLAIM_WARNING
    assert warning.action is EscalationAction.REMIND_OWNER
    assert warning.escalation_id != escalation_id(c, 2)


# --- follow-up promises -----------------------------------------------------------------


def test_a_follow_up_clock_runs_to_the_reps_promise_when_the_policy_honours_it() -> None:
    policy = Policy.model_validate(
        spec(
            kind="follow_up",
            limit_seconds=86400,
            ladder=[
                {"level": 1, "after_seconds": 0, "action": "remind_owner"},
                {"level": 2, "after_seconds": 600, "action": "notify_manager"},
            ],
        )
    )
    assert follow_up_timing(START, at(7200), policy) == at(7200)
    assert follow_up_timing(START, None, policy) is None
    assert follow_up_timing(START, at(-60), policy) is None  # a promise in the past
    strict = policy.model_copy(update={"honour_promise": False})
    assert follow_up_timing(START, at(7200), strict) is None

    promised = clock(policy, promised_at=at(7200))
    steps, next_at = due_steps(promised, policy, at(7200))
    assert [(s.level, s.due_at) for s in steps] == [(1, at(7200))]
    assert next_at == at(7800)
    gap = clock(policy)
    assert due_steps(gap, policy, at(86399)) == ([], at(86400))


# --- on-call alerts ---------------------------------------------------------------------


def test_alert_labels_identify_the_step_and_the_resolve_has_the_same_labels() -> None:
    policy = Policy.model_validate(
        spec(ladder=[{"level": 1, "after_seconds": 0, "action": "page_oncall"}])
    )
    c = clock(policy)
    (step,), _ = due_steps(c, policy, at(600))
    firing = escalation_event(
        c, step, EscalationStatus.FIRING, breached_at=at(601), occurred_at=at(601)
    )
    resolved = escalation_event(
        c, step, EscalationStatus.RESOLVED, breached_at=at(601), occurred_at=at(900)
    )
    alerting = Alerting(firing_hold_seconds=3600)
    a = alert_payload(firing, now=at(700), alerting=alerting)
    b = alert_payload(resolved, now=at(900), alerting=alerting)
    assert a["labels"] == b["labels"]
    assert a["labels"]["alertname"] == ALERT_NAME
    assert a["labels"]["severity"] == "page"
    assert a["labels"]["escalation_id"] == firing.escalation_id
    assert datetime.fromisoformat(a["startsAt"]) == at(601)
    assert datetime.fromisoformat(a["endsAt"]) == at(700 + 3600)
    assert datetime.fromisoformat(b["endsAt"]) == at(900)
    # Ids only: every label value is an id, an enum value or a number.
    assert set(a["labels"]) == {
        "alertname",
        "severity",
        "team",
        "kind",
        "policy",
        "level",
        "action",
        "escalation_id",
        "lead_id",
    }


@given(st.integers(0, 100), st.floats(0.1, 10), st.floats(10, 600))
def test_retry_delay_doubles_from_the_base_and_never_exceeds_the_cap(
    attempts: int, base: float, cap: float
) -> None:
    alerting = Alerting(retry_base_seconds=base, retry_max_seconds=cap)
    delay = retry_delay(attempts, alerting).total_seconds()
    later = retry_delay(attempts + 1, alerting).total_seconds()
    # timedelta keeps microseconds: compare to within one.
    assert min(base, cap) - 1e-6 <= delay <= cap + 1e-6
    assert later >= delay
    assert retry_delay(1, alerting).total_seconds() == pytest.approx(min(base, cap), abs=1e-6)
    assert retry_delay(2, alerting).total_seconds() == pytest.approx(min(2 * base, cap), abs=1e-6)


# --- accelerated time -------------------------------------------------------------------


def test_a_scaled_clock_runs_factor_times_faster_from_its_origin() -> None:
    ticks = iter([100.0, 100.0, 101.5, 103.0])
    scaled = ScaledClock(3600, START, monotonic=lambda: next(ticks))
    assert scaled.now() == START
    assert scaled.now() == at(1.5 * 3600)
    assert scaled.now() == at(3 * 3600)
    with pytest.raises(ValueError, match="positive"):
        ScaledClock(0)
    with pytest.raises(ValueError, match="timezone"):
        ScaledClock(2, datetime(2025, 1, 1))
