"""Per-lead state: funnel, pipeline, wins and losses, first touch, pool and SLA clocks.

The served series are the sum of every lead's contribution; these tests pin what one
lead contributes, that counters never go back, that gauges do not depend on the order
in which a lead's facts arrive, and that the stored form round-trips.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from leadloop_metrics.adapters.lead_state_json import state_from_json, state_to_json
from leadloop_metrics.adapters.prometheus import SeriesView
from leadloop_metrics.domain.facts import (
    Accepted,
    Assigned,
    Escalated,
    LeadFact,
    Rated,
    Silenced,
    StageMoved,
    Touched,
    fact_from_json,
    fact_to_json,
)
from leadloop_metrics.domain.fold import merge, step
from leadloop_metrics.domain.labels import (
    Delta,
    LabelPolicy,
    SeriesKey,
    every_series,
    le_label,
    series,
    series_bound,
)
from leadloop_metrics.domain.leads import (
    LeadState,
    apply,
    contributions,
)
from leadloop_metrics.domain.metric_defs import (
    METRICS,
    served_value,
)

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
POLICY = LabelPolicy(
    sources=frozenset({"web_form", "wechat"}),
    teams=frozenset({"north", "south"}),
    reps={"rep-a": "north", "rep-b": "south"},
)
L = "lead-1"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def accepted(source: str = "web_form", t: float = 0, priority: str = "hot") -> Accepted:
    return Accepted(f"acc-{source}", L, source, at(t), priority)


def assigned(team: str = "north", t: float = 0.02, owned: bool = True, n: int = 0) -> Assigned:
    kind, strategy = ("initial", "round_robin") if owned else ("pooled", "pool")
    return Assigned(f"asg-{n}", L, team, owned, strategy, kind, at(t), "hot")


def touched(t: float, touch: bool = True, n: int = 0) -> Touched:
    return Touched(f"act-{n}", L, touch, at(t))


def moved(
    stage: str, t: float, amount: float | None = None, reason: str | None = None
) -> StageMoved:
    return StageMoved(f"stg-{stage}-{t}", L, stage, at(t), amount, reason)


def escalated(esc: str, firing: bool, kind: str = "first_response") -> Escalated:
    return Escalated(f"{esc}-{firing}", L, esc, "north", "fr-policy", kind, 1, firing)


def run(facts: list[LeadFact]) -> tuple[LeadState, Delta]:
    result = step({}, facts, POLICY)
    return result.states[L], result.delta


def value(delta: Delta, name: str, **labels: str) -> float:
    if name in METRICS:
        key = series(name, **labels)
    else:  # a histogram's stored series
        base = METRICS[name.rsplit("_", 1)[0]]
        order = (*base.labels, "le") if name.endswith("_bucket") else base.labels
        key = (name, tuple((k, labels[k]) for k in order))
    return served_value(key[0], delta.get(key, 0.0))


def test_a_lead_through_the_whole_funnel_to_won() -> None:
    state, delta = run(
        [
            accepted(),
            assigned(t=0.03),
            touched(240),
            moved("qualified", 3600, amount=1000.10),
            moved("proposal", 7200, amount=1200.25),
            moved("won", 9000, amount=1300.5),
        ]
    )
    for stage in ("new", "assigned", "contacted", "qualified", "proposal", "won"):
        assert value(delta, "leadloop_funnel_entered_total", stage=stage, source="web_form") == 1
    assert (
        value(delta, "leadloop_funnel_entered_total", stage="negotiation", source="web_form") == 0
    )
    assert value(delta, "leadloop_leads_won_total", team="north", source="web_form") == 1
    assert value(delta, "leadloop_won_amount_total", team="north", source="web_form") == 1300.5
    # Closed: no open lead and no pipeline amount left behind in any stage.
    assert not [k for k, v in delta.items() if k[0] == "leadloop_funnel_open_leads" and v]
    assert not [k for k, v in delta.items() if k[0] == "leadloop_pipeline_amount" and v]
    fr = {"team": "north", "priority": "hot"}
    assert value(delta, "leadloop_first_response_seconds_count", **fr) == 1
    assert value(delta, "leadloop_first_response_seconds_sum", **fr) == 239.97
    assert value(delta, "leadloop_first_response_seconds_bucket", le="60.0", **fr) == 0
    assert value(delta, "leadloop_first_response_seconds_bucket", le="300.0", **fr) == 1
    assert value(delta, "leadloop_first_response_seconds_bucket", le="+Inf", **fr) == 1
    assert value(delta, "leadloop_assignment_latency_seconds_sum") == 0.03
    assert value(delta, "leadloop_assignment_latency_seconds_bucket", le="0.025") == 0
    assert value(delta, "leadloop_assignment_latency_seconds_bucket", le="0.05") == 1
    assert state.won is not None
    assert state.won.cents == 130050


def test_an_open_lead_moves_between_stages_and_carries_its_latest_amount() -> None:
    state = LeadState(L)
    served: Delta = {}
    for fact in (accepted(), assigned(), touched(60), moved("qualified", 100, amount=500)):
        result = step({L: state}, [fact], POLICY)
        merge(served, result.delta)
        state = result.states[L]
    assert value(served, "leadloop_funnel_open_leads", stage="qualified", team="north") == 1
    for stage in ("new", "assigned", "contacted"):
        assert value(served, "leadloop_funnel_open_leads", stage=stage, team="north") == 0
    assert value(served, "leadloop_funnel_open_leads", stage="new", team="unassigned") == 0
    assert value(served, "leadloop_pipeline_amount", stage="qualified", team="north") == 500
    # A later stage change without an amount keeps the amount; an older one is ignored.
    result = step({L: state}, [moved("proposal", 200), moved("contacted", 50)], POLICY)
    merge(served, result.delta)
    assert value(served, "leadloop_pipeline_amount", stage="qualified", team="north") == 0
    assert value(served, "leadloop_pipeline_amount", stage="proposal", team="north") == 500
    assert value(served, "leadloop_funnel_open_leads", stage="proposal", team="north") == 1


def test_a_lost_lead_is_attributed_to_the_furthest_stage_it_reached() -> None:
    _, delta = run(
        [
            accepted(),
            assigned(team="south"),
            moved("qualified", 100),
            moved("lost", 200, None, "timing"),
        ]
    )
    key = {"stage": "qualified", "reason": "timing", "team": "south"}
    assert value(delta, "leadloop_leads_lost_total", **key) == 1


def test_a_win_that_arrives_before_the_assignment_waits_for_the_team() -> None:
    state, delta = run([moved("won", 500, amount=10), accepted()])
    assert value(delta, "leadloop_funnel_entered_total", stage="won", source="web_form") == 1
    assert not [k for k in delta if k[0] == "leadloop_leads_won_total"]
    result = step({L: state}, [assigned(team="unknown-team")], POLICY)
    # The team is outside the configured list: `other`.
    assert value(result.delta, "leadloop_leads_won_total", team="other", source="web_form") == 1


def test_a_pooled_lead_counts_in_the_pool_until_a_rep_owns_it() -> None:
    state, delta = run([accepted(source="partner"), assigned(owned=False, n=1)])
    assert value(delta, "leadloop_pool_leads", team="north") == 1
    assert value(delta, "leadloop_funnel_open_leads", stage="new", team="north") == 1
    assert value(delta, "leadloop_funnel_entered_total", stage="new", source="other") == 1
    result = step({L: state}, [assigned(t=60, n=2)], POLICY)
    assert value(result.delta, "leadloop_pool_leads", team="north") == -1
    assert value(result.delta, "leadloop_funnel_open_leads", stage="assigned", team="north") == 1


def test_a_note_is_not_a_touch() -> None:
    state, delta = run([accepted(), assigned(), touched(30, touch=False)])
    assert state.first_touch_at is None
    assert not [k for k in delta if k[0].startswith("leadloop_first_response")]


def test_open_clocks_count_fired_steps_until_resolved_in_either_order() -> None:
    _, delta = run([escalated("e1", True), escalated("e2", True, kind="follow_up")])
    assert value(delta, "leadloop_sla_open_clocks", kind="first_response") == 1
    assert value(delta, "leadloop_sla_open_clocks", kind="follow_up") == 1
    _, delta = run([escalated("e1", False), escalated("e1", True)])
    assert value(delta, "leadloop_sla_open_clocks", kind="first_response") == 0


def test_time_in_each_stage_is_observed_once_the_lead_leaves_it() -> None:
    state, delta = run(
        [
            accepted(),
            assigned(t=0.5),
            touched(240),
            moved("qualified", 3600),
            moved("proposal", 7200),
        ]
    )

    def stage_time(stage: str, what: str = "count", **labels: str) -> float:
        return value(
            delta, f"leadloop_stage_duration_seconds_{what}", stage=stage, team="north", **labels
        )

    assert stage_time("new", "sum") == 0.5
    assert stage_time("assigned", "sum") == 239.5
    assert stage_time("contacted", "sum") == 3360
    assert stage_time("qualified", "sum") == 3600
    assert stage_time("qualified", "bucket", le="300.0") == 0
    assert stage_time("qualified", "bucket", le="3600.0") == 1
    # Still in proposal: nothing observed for it yet.
    assert stage_time("proposal") == 0
    assert [s.stage for s in state.stage_times] == ["new", "assigned", "contacted", "qualified"]


def test_a_stage_time_is_fixed_once_even_when_the_lead_comes_back_to_the_stage() -> None:
    facts = [accepted(), assigned(t=1), moved("qualified", 100), moved("proposal", 400)]
    state, _ = run([*facts, moved("qualified", 900), moved("won", 1000)])

    times = {(s.stage, s.millis) for s in state.stage_times}
    assert times == {
        ("new", 1000),
        ("assigned", 99_000),
        ("qualified", 300_000),
        # From entering proposal to the first stage entered for the first time after it
        # (won at 1000 s): the return to qualified at 900 s is not a new stage.
        ("proposal", 600_000),
    }
    assert not [s for s in state.stage_times if s.stage == "won"], "a closed stage has no time"


def test_no_stage_time_before_the_acceptance_and_the_team_are_known() -> None:
    early, delta = run([moved("qualified", 100), moved("proposal", 400)])
    assert early.stage_times == ()
    assert not [k for k, v in delta.items() if "stage_duration" in k[0] and v]

    later = step({L: early}, [accepted(), assigned(t=1)], POLICY).states[L]

    assert {(s.stage, s.millis) for s in later.stage_times} == {
        ("new", 1000),
        ("assigned", 99_000),
        ("qualified", 300_000),
    }


def test_states_stored_before_stage_times_existed_still_load() -> None:
    state, _ = run([accepted(), assigned(t=1), moved("qualified", 100)])
    stored = state_to_json(state)
    del stored["stage_entered"], stored["stage_times"]

    old = state_from_json(L, stored)

    assert old.stage_times == ()
    assert old.stage_entered == ()
    assert old.reached == state.reached


def test_series_bound_is_finite_and_documented() -> None:
    bound = series_bound(sources=5, teams=3)
    assert set(bound) == set(METRICS)
    assert sum(bound.values()) < 5000
    # docs/observability.md: each rep on the roster adds 38 series (`other` is there
    # with no rep at all): open leads, first response (14), touches, breaches (5
    # levels), won / amount / lost, taken (2 kinds), follow-ups (4), satisfaction (8).
    per_rep = 1 + 14 + 1 + 5 + 3 + 2 + 4 + 8
    with_reps = series_bound(sources=5, teams=10, reps=200)
    assert sum(with_reps.values()) - sum(series_bound(sources=5, teams=10).values()) == (
        200 * per_rep
    )


# --- properties ----------------------------------------------------------------------


#: Two reps on the roster and one that is not.
REPS = ("rep-a", "rep-b", "rep-z")


@st.composite
def lead_facts(draw: st.DrawFn) -> list[LeadFact]:
    out: list[LeadFact] = []
    for n in range(draw(st.integers(1, 12))):
        t = draw(st.floats(0, 10_000, allow_nan=False))
        which = draw(st.sampled_from(["acc", "asg", "act", "stg", "esc", "sil", "rat"]))
        if which == "acc":
            source = draw(st.sampled_from(["web_form", "x"]))
            out.append(Accepted(f"acc-{n}", L, source, at(t), "warm", draw(st.booleans())))
        elif which == "asg":
            owned = draw(st.booleans())
            team = draw(st.sampled_from(["north", "south", "east"]))
            owner = draw(st.sampled_from(REPS)) if owned else None
            kind = draw(st.sampled_from(["initial", "reassigned", "reclaimed"]))
            previous = draw(st.none() | st.sampled_from(REPS))
            out.append(
                Assigned(f"asg-{n}", L, team, owned, "pool", kind, at(t), "cold", owner, previous)
            )
        elif which == "act":
            rep = draw(st.none() | st.sampled_from(REPS))
            out.append(Touched(f"act-{n}", L, draw(st.booleans()), at(t), rep))
        elif which == "sil":
            out.append(Silenced(f"sil-{n}", L, at(t)))
        elif which == "rat":
            rep = draw(st.none() | st.sampled_from(REPS))
            out.append(Rated(f"rat-{n}", L, draw(st.integers(1, 5)), at(t), rep))
        elif which == "stg":
            stage = draw(st.sampled_from(["contacted", "qualified", "proposal", "won", "lost"]))
            amount = draw(st.none() | st.floats(0, 1e7, allow_nan=False))
            reason = "no_budget" if stage == "lost" else None
            close = draw(st.none() | st.dates(date(2025, 1, 1), date(2026, 12, 31)))
            out.append(StageMoved(f"stg-{n}", L, stage, at(t), amount, reason, close))
        else:
            # An escalation id always names the same owner and kind, as on the topic.
            esc, owner, kind = draw(
                st.sampled_from([("e1", "rep-a", "follow_up"), ("e2", "rep-z", "first_response")])
            )
            firing = draw(st.booleans())
            out.append(Escalated(f"esc-{n}", L, esc, "north", "p", kind, 2, firing, owner, at(t)))
    return out


def counters_of(delta: Delta) -> Counter[SeriesKey]:
    kinds = {
        n: d.kind
        for d in METRICS.values()
        for n in (d.name, f"{d.name}_bucket", f"{d.name}_sum", f"{d.name}_count")
    }
    return Counter({k: v for k, v in delta.items() if kinds[k[0]] != "gauge"})


#: Counted per event (test_fold.py), not from the lead's state.
EVENT_COUNTERS = {
    "leadloop_leads_assigned_total",
    "leadloop_sla_breaches_total",
    "leadloop_sla_resolved_total",
    "leadloop_rep_touches_total",
    "leadloop_rep_sla_breaches_total",
    "leadloop_rep_leads_taken_total",
}
GAUGES = {d.name for d in METRICS.values() if d.kind == "gauge"}


@settings(max_examples=300)
@given(lead_facts())
def test_counters_never_go_back_and_the_served_sum_is_the_final_contribution(
    facts: list[LeadFact],
) -> None:
    state = LeadState(L)
    served: Delta = {}
    for fact in facts:
        result = step({L: state}, [fact], POLICY)
        assert all(v > 0 for v in counters_of(result.delta).values()), fact
        merge(served, result.delta)
        state = result.states[L]
    final = contributions(state, POLICY)
    per_lead = {k: v for k, v in served.items() if v and k[0] not in EVENT_COUNTERS}
    assert per_lead == {k: v for k, v in final.items() if v}
    assert all(v >= 0 for v in served.values())
    assert state_from_json(L, state_to_json(state)) == state


@settings(max_examples=200)
@given(lead_facts(), st.randoms())
def test_gauges_do_not_depend_on_the_order_of_arrival(facts: list[LeadFact], rnd: object) -> None:
    shuffled = list(facts)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    a = {k: v for k, v in contributions(_final(facts), POLICY).items() if k[0] in GAUGES}
    b = {k: v for k, v in contributions(_final(shuffled), POLICY).items() if k[0] in GAUGES}
    assert a == b


@settings(max_examples=200)
@given(lead_facts(), st.randoms())
def test_the_expected_close_is_the_latest_given_in_any_order(
    facts: list[LeadFact], rnd: object
) -> None:
    shuffled = list(facts)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    dated = [f for f in facts if isinstance(f, StageMoved) and f.expected_close is not None]
    latest = max(dated, key=lambda f: (f.occurred_at, f.event_id), default=None)
    want = None if latest is None else latest.expected_close
    assert _final(facts).expected_close == want
    assert _final(shuffled).expected_close == want


def test_a_stage_change_without_a_date_keeps_the_one_before() -> None:
    first = StageMoved("s1", L, "qualified", at(1), 10.0, None, date(2026, 12, 20))
    then = StageMoved("s2", L, "proposal", at(2), 10.0, None, None)
    state = _final([accepted(), first, then])
    assert state.expected_close == date(2026, 12, 20)
    stored = state_to_json(state)
    assert state_from_json(L, stored) == state
    # A state stored before the date was kept has neither key.
    del stored["expected_close"], stored["expected_close_order"]
    old = state_from_json(L, stored)
    assert old.expected_close is None
    assert old.expected_close_order is None


def _final(facts: list[LeadFact]) -> LeadState:
    state = LeadState(L)
    for fact in facts:
        state = apply(state, fact)
    return state


@given(lead_facts())
def test_facts_round_trip_through_their_stored_form(facts: list[LeadFact]) -> None:
    for fact in facts:
        assert fact_from_json(fact_to_json(fact)) == fact


def test_histogram_sums_are_exact_in_any_order() -> None:
    # 0.1 + 0.2 in floats is not 0.3; whole milliseconds summed are.
    facts_a = [accepted(t=0), assigned(t=0.1)]
    _, delta = run(facts_a)
    assert value(delta, "leadloop_assignment_latency_seconds_sum") == 0.1
    assert math.isclose(0.1 + 0.2, 0.3)
    assert 0.1 + 0.2 != 0.3


def test_the_full_series_set_is_what_the_bound_counts_and_every_series_is_served() -> None:
    """How fast it is served: bench/metrics_scrape.py."""
    teams = ("t0", "t1", "t2")
    # 20 reps of the configured teams, and one of a team no longer configured.
    reps = {f"r{i}": teams[i % 3] for i in range(20)} | {"r-x": "t-gone"}
    policy = LabelPolicy(
        sources=frozenset(f"s{i}" for i in range(5)), teams=frozenset(teams), reps=reps
    )
    stored: dict[SeriesKey, float] = {}
    for name, sets in every_series(policy).items():
        d = METRICS[name]
        for n, labels in enumerate(sets, start=1):
            if d.kind == "histogram":
                for b in (*d.buckets, math.inf):
                    stored[(f"{name}_bucket", (*labels, ("le", le_label(b))))] = n
                stored[(f"{name}_sum", labels)] = n
                stored[(f"{name}_count", labels)] = n
            else:
                stored[(name, labels)] = n
    assert len(stored) == sum(series_bound(sources=5, teams=3, reps=21).values())
    assert ("leadloop_rep_open_leads", (("team", "other"), ("rep", "r-x"))) in stored
    text = SeriesView(stored).render().decode()
    served = [
        s for family in text_string_to_metric_families(text) for s in family.samples if s.value
    ]
    assert len(served) == len(stored)
