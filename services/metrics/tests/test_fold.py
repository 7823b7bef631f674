"""Folding events into counters: conservation, bounded labels, and the served view."""

from __future__ import annotations

import math
import re
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from leadloop.events import (
    ActivityKind,
    ActivityRecorded,
    AssignmentKind,
    EscalationAction,
    EscalationKind,
    EscalationRaised,
    EscalationStatus,
    IngestOutcome,
    IngestOutcomeRecorded,
    LeadAccepted,
    LeadAssigned,
    LossReason,
    Priority,
    RejectReason,
    Stage,
    StageChanged,
    Strategy,
    deterministic_id,
)
from leadloop_metrics.adapters.prometheus import SeriesView, registry_for
from leadloop_metrics.domain.facts import EventIn, fact_of
from leadloop_metrics.domain.fold import step
from leadloop_metrics.domain.labels import (
    LabelPolicy,
    SeriesKey,
    every_series,
    le_label,
    series,
)
from leadloop_metrics.domain.metric_defs import (
    FOLLOWUP_STATUSES,
    LEDGER_STATES,
    METRICS,
    stored_names,
)

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
SOURCES = frozenset({"web_form", "lead_ads", "wechat", "trade_show_csv", "referral"})
TEAMS = ("north", "south", "team-east", "apac.sales_2")
REPS = {"rep-a": "north", "rep-b": "south"}
POLICY = LabelPolicy(sources=SOURCES, teams=frozenset(TEAMS), reps=REPS)
Event = EventIn
#: Series of the single-event counters (the per-lead series are tested in test_leads.py).
EVENT_COUNTERS = {
    "leadloop_leads_received_total",
    "leadloop_leads_accepted_total",
    "leadloop_leads_duplicate_total",
    "leadloop_leads_rejected_total",
    "leadloop_leads_assigned_total",
    "leadloop_sla_breaches_total",
    "leadloop_sla_resolved_total",
}


def fold(events: list[Any], policy: LabelPolicy, *, every: bool = False) -> Counter[SeriesKey]:
    """The series changes of applying ``events`` once to an empty store."""
    delta = step({}, [fact_of(e) for e in events], policy).delta
    return Counter({k: v for k, v in delta.items() if every or k[0] in EVENT_COUNTERS})


REASONS = [r.value for r in RejectReason]


def outcome(
    source: str, kind: IngestOutcome, reason: str | None = None, *, n: int = 0
) -> IngestOutcomeRecorded:
    return IngestOutcomeRecorded(
        event_id=deterministic_id("outcome", source, n),
        occurred_at=NOW,
        source=source,
        outcome=kind,
        reason=reason,
        lead_id=None if kind is IngestOutcome.REJECTED else deterministic_id("lead", source, n),
        raw_partition=0,
        raw_offset=n,
    )


def assigned(team: str, *, lead_id: str = "lead-1", owner: str | None = "rep-1") -> LeadAssigned:
    return LeadAssigned(
        event_id=f"ev-{lead_id}",
        occurred_at=NOW,
        assignment_id=f"as-{lead_id}",
        lead_id=lead_id,
        owner_id=owner,
        team_id=team,
        rule_id="all",
        rule_version="v1",
        strategy=Strategy.ROUND_ROBIN if owner else Strategy.POOL,
        kind=AssignmentKind.INITIAL if owner else AssignmentKind.POOLED,
        reason="because",
        lead_occurred_at=NOW,
        assigned_at=NOW,
        priority=Priority.HOT,
    )


def escalation(
    team: str,
    *,
    lead_id: str = "lead-1",
    level: int = 1,
    status: EscalationStatus = EscalationStatus.FIRING,
    owner: str | None = "rep-1",
) -> EscalationRaised:
    return EscalationRaised(
        event_id=f"esc-{lead_id}-{level}-{status.value}",
        occurred_at=NOW,
        escalation_id=f"esc-{lead_id}-{level}",
        lead_id=lead_id,
        owner_id=owner,
        team_id=team,
        policy_id="fr",
        kind=EscalationKind.FIRST_RESPONSE,
        level=level,
        action=EscalationAction.REMIND_OWNER,
        due_at=NOW,
        breached_at=NOW,
        status=status,
    )


def total(inc: Counter[SeriesKey], metric: str, **match: str) -> int:
    return sum(
        v for (m, labels), v in inc.items() if m == metric and match.items() <= dict(labels).items()
    )


# --- ingest outcomes ---------------------------------------------------------------------


def test_outcomes_fold_into_received_accepted_duplicate_and_rejected() -> None:
    events = [
        outcome("web_form", IngestOutcome.ACCEPTED, n=1),
        outcome("web_form", IngestOutcome.DUPLICATE, "redelivery", n=2),
        outcome("web_form", IngestOutcome.REJECTED, "invalid_email", n=3),
        outcome("wechat", IngestOutcome.REJECTED, "invalid_phone", n=4),
        outcome("wechat", IngestOutcome.REJECTED, "invalid_phone", n=5),
    ]
    inc = fold(events, POLICY)
    assert inc == Counter(
        {
            series("leadloop_leads_received_total", source="web_form"): 3,
            series("leadloop_leads_accepted_total", source="web_form"): 1,
            series("leadloop_leads_duplicate_total", source="web_form"): 1,
            series("leadloop_leads_rejected_total", source="web_form", reason="invalid_email"): 1,
            series("leadloop_leads_received_total", source="wechat"): 2,
            series("leadloop_leads_rejected_total", source="wechat", reason="invalid_phone"): 2,
        }
    )


def test_an_unconfigured_source_is_counted_as_other() -> None:
    inc = fold(
        [
            outcome("partner_x", IngestOutcome.ACCEPTED),
            outcome("unknown", IngestOutcome.REJECTED, "invalid_json"),
        ],
        POLICY,
    )
    assert inc[series("leadloop_leads_received_total", source="other")] == 2
    assert inc[series("leadloop_leads_accepted_total", source="other")] == 1
    assert total(inc, "leadloop_leads_received_total", source="partner_x") == 0


@pytest.mark.parametrize("reason", [None, "", "made_up", "redelivery", "INVALID_JSON"])
def test_an_unknown_reject_reason_is_counted_as_other(reason: str | None) -> None:
    inc = fold([outcome("web_form", IngestOutcome.REJECTED, reason)], POLICY)
    assert inc[series("leadloop_leads_rejected_total", source="web_form", reason="other")] == 1


def test_assignments_and_escalations_are_counted_by_team_strategy_kind_and_level() -> None:
    events: list[Event] = [
        assigned("north"),
        assigned("north", lead_id="lead-2"),
        assigned("south", lead_id="lead-3", owner=None),
        escalation("north", level=1),
        escalation("north", level=2),
        escalation("north", level=2, status=EscalationStatus.RESOLVED),
    ]
    inc = fold(events, POLICY)
    assert inc == Counter(
        {
            series(
                "leadloop_leads_assigned_total",
                team="north",
                strategy="round_robin",
                kind="initial",
            ): 2,
            series(
                "leadloop_leads_assigned_total", team="south", strategy="pool", kind="pooled"
            ): 1,
            series(
                "leadloop_sla_breaches_total", kind="first_response", level="1", team="north"
            ): 1,
            series(
                "leadloop_sla_breaches_total", kind="first_response", level="2", team="north"
            ): 1,
            series(
                "leadloop_sla_resolved_total", kind="first_response", level="2", team="north"
            ): 1,
        }
    )


def test_an_empty_stream_folds_to_nothing() -> None:
    assert fold([], POLICY, every=True) == Counter()


source_names = st.sampled_from(sorted(SOURCES)) | st.text(max_size=12)
outcomes_stream = st.lists(
    st.builds(
        outcome,
        source_names,
        st.sampled_from(list(IngestOutcome)),
        st.none() | st.sampled_from(REASONS) | st.text(max_size=8),
        n=st.integers(0, 10**6),
    ),
    max_size=60,
)


@settings(max_examples=200)
@given(outcomes_stream)
def test_received_equals_accepted_plus_duplicate_plus_rejected_per_source(
    events: list[IngestOutcomeRecorded],
) -> None:
    inc = fold(events, POLICY)
    labels = {dict(lbl)["source"] for m, lbl in inc if m == "leadloop_leads_received_total"}
    assert labels <= SOURCES | {"other"}
    for source in labels:
        received = total(inc, "leadloop_leads_received_total", source=source)
        assert received == (
            total(inc, "leadloop_leads_accepted_total", source=source)
            + total(inc, "leadloop_leads_duplicate_total", source=source)
            + total(inc, "leadloop_leads_rejected_total", source=source)
        )
    assert sum(v for (m, _), v in inc.items() if m == "leadloop_leads_received_total") == len(
        events
    )
    # Per configured source the counts match the events exactly.
    expected = Counter(POLICY.source(e.source) for e in events)
    assert {s: total(inc, "leadloop_leads_received_total", source=s) for s in expected} == dict(
        expected
    )


# --- bounded labels ---------------------------------------------------------------------

emails = st.builds(
    lambda local, domain: f"{local}@{domain}.com",
    st.text(alphabet="abcxyz._-", min_size=1, max_size=10),
    st.sampled_from(["example", "qq", "163"]),
)
phones = st.sampled_from(
    ["+8613800138000", "13800138000", "+1 (650) 253-0000", "0086-138-0013-8000", "4155550100"]
)
uuids = st.builds(lambda: str(uuid.uuid4())) | st.builds(
    lambda s: deterministic_id("lead", "web_form", s), st.text(max_size=5)
)
hostile = emails | phones | uuids
# Team ids outside the configured list (whatever their shape) are `other`.
teams = (
    st.sampled_from(TEAMS)
    | emails
    | st.sampled_from(["+8613800138000", "+1 (650) 253-0000", "Wei Zhang", "Sales North", "x" * 65])
    | uuids
    | st.sampled_from(["1234567", "team-1"])
)
SEVEN_DIGITS = re.compile(r"\d{7}")


@st.composite
def hostile_events(draw: st.DrawFn) -> tuple[list[Event], set[str]]:
    planted: set[str] = set()

    def pii() -> str:
        value = draw(hostile)
        planted.add(value)
        return value

    events: list[Event] = []
    # A few leads so that facts about the same lead meet (lead ids are personal-data-like
    # on purpose: none may reach a label).
    lead_pool = [pii(), pii(), pii()]
    for _ in range(draw(st.integers(1, 12))):
        which = draw(
            st.sampled_from(["outcome", "assigned", "escalation", "accepted", "activity", "stage"])
        )
        if which == "outcome":
            kind = draw(st.sampled_from(list(IngestOutcome)))
            events.append(
                IngestOutcomeRecorded(
                    event_id=pii(),
                    occurred_at=NOW,
                    source=pii() if draw(st.booleans()) else draw(st.sampled_from(sorted(SOURCES))),
                    outcome=kind,
                    reason=draw(st.none() | st.sampled_from(REASONS))
                    if draw(st.booleans())
                    else pii(),
                    lead_id=pii(),
                    raw_partition=0,
                    raw_offset=0,
                )
            )
        elif which == "accepted":
            events.append(
                LeadAccepted(
                    event_id=pii(),
                    occurred_at=NOW,
                    lead_id=lead_pool[draw(st.integers(0, 2))],
                    source=draw(st.sampled_from(sorted(SOURCES)))
                    if draw(st.booleans())
                    else draw(st.sampled_from(["partner.x", "a1234567", "x" * 64])),
                    source_lead_id=pii(),
                    accepted_at=NOW,
                    score=1,
                    priority=Priority.WARM,
                )
            )
        elif which == "activity":
            events.append(
                ActivityRecorded(
                    event_id=pii(),
                    lead_id=lead_pool[draw(st.integers(0, 2))],
                    rep_id=pii(),
                    kind=draw(st.sampled_from(list(ActivityKind))),
                    occurred_at=NOW,
                    outcome=pii(),
                )
            )
        elif which == "stage":
            stage = draw(st.sampled_from(list(Stage)))
            events.append(
                StageChanged(
                    event_id=pii(),
                    lead_id=lead_pool[draw(st.integers(0, 2))],
                    stage=stage,
                    occurred_at=NOW,
                    rep_id=pii(),
                    amount=draw(st.none() | st.floats(0, 1e9)),
                    loss_reason=LossReason.OTHER if stage is Stage.LOST else None,
                )
            )
        elif which == "assigned":
            owner = pii() if draw(st.booleans()) else None
            lead = lead_pool[draw(st.integers(0, 2))] if draw(st.booleans()) else pii()
            events.append(assigned(draw(teams), lead_id=lead, owner=owner))
        else:
            events.append(
                escalation(
                    draw(teams),
                    lead_id=pii(),
                    level=draw(st.integers(1, 9)),
                    status=draw(st.sampled_from(list(EscalationStatus))),
                    owner=pii() if draw(st.booleans()) else None,
                )
            )
    return events, planted


BOUNDED = {
    "source": SOURCES | {"other"},
    "reason": set(REASONS) | {"other"},
    "strategy": {s.value for s in Strategy},
    "kind": {k.value for k in AssignmentKind} | {k.value for k in EscalationKind},
    "level": {str(i) for i in range(1, 6)},
    "team": {*TEAMS, "other", "unassigned"},
    "stage": {
        "new",
        "assigned",
        "contacted",
        "qualified",
        "proposal",
        "negotiation",
        "won",
        "lost",
    },
    "priority": {"hot", "warm", "cold", "other"},
    "rep": {*REPS, "other"},
    "state": set(LEDGER_STATES),
    "status": set(FOLLOWUP_STATUSES),
    # Bucket bounds come from the metric definitions only (a week is 604800 seconds, so
    # a bound may have seven digits; it is still never data).
    "le": {le_label(b) for d in METRICS.values() for b in (*d.buckets, math.inf)},
}
SERVED_NAMES = {n: d for d in METRICS.values() for n in stored_names(d)}
SERIES = {name: set(sets) for name, sets in every_series(POLICY).items()}


@settings(max_examples=150)
@given(hostile_events())
def test_no_label_value_carries_an_email_phone_or_lead_id(
    case: tuple[list[Event], set[str]],
) -> None:
    events, planted = case
    inc = fold(events, POLICY, every=True)
    counted = [e for e in events if isinstance(e, IngestOutcomeRecorded | LeadAssigned)]
    counted += [e for e in events if isinstance(e, EscalationRaised)]
    assert sum(v for k, v in inc.items() if k[0] in EVENT_COUNTERS) >= len(counted)
    for metric, labels in inc:
        d = SERVED_NAMES[metric]
        expected = (*d.labels, "le") if metric.endswith("_bucket") else d.labels
        assert tuple(k for k, _ in labels) == expected
        for key, value in labels:
            assert "@" not in value, (metric, key, value)
            if key != "le":  # checked against the declared bounds below
                assert not SEVEN_DIGITS.search(value), (metric, key, value)
            assert value not in planted, (metric, key, value)
            allowed = BOUNDED[key]
            assert allowed is None or value in allowed, (metric, key, value)
        # Every label set the fold writes is one the series bound counts.
        base = tuple(kv for kv in labels if kv[0] != "le")
        assert base in SERIES[d.name], (metric, labels)


def test_a_team_outside_the_configured_list_is_other() -> None:
    assert POLICY.team("north") == "north"
    assert POLICY.team(None) == "unassigned"
    for unsafe in ("Wei Zhang", "a@b.com", "x" * 65, "", "+8613800138000", "Sales", "team-9"):
        assert POLICY.team(unsafe) == "other", unsafe


# --- the served view ---------------------------------------------------------------------

RECEIVED_WEB = series("leadloop_leads_received_total", source="web_form")
REJECTED_WEB = series("leadloop_leads_rejected_total", source="web_form", reason="invalid_json")


def test_replace_serves_exactly_what_is_stored() -> None:
    # Gauges go down as well as up: the view takes the stored values as they are (the
    # handler serialises re-reads with its own commits: test_handler.py).
    view = SeriesView({RECEIVED_WEB: 10})
    assert view.value("leadloop_leads_received_total", source="web_form") == 10
    view.replace({RECEIVED_WEB: 25})
    assert view.value("leadloop_leads_received_total", source="web_form") == 25


def test_replace_accepts_stored_labels_in_any_order_and_ignores_unknown_metrics() -> None:
    reordered: SeriesKey = (
        "leadloop_leads_rejected_total",
        (("reason", "invalid_json"), ("source", "web_form")),
    )
    view = SeriesView({reordered: 3, ("leadloop_not_a_metric", (("x", "y"),)): 9})
    assert (
        view.value("leadloop_leads_rejected_total", source="web_form", reason="invalid_json") == 3
    )
    names = {family.name for family in view.collect()}
    assert "leadloop_not_a_metric" not in names


def test_add_then_collect_exposes_the_expected_samples() -> None:
    view = SeriesView({RECEIVED_WEB: 2})
    view.add(
        fold(
            [
                outcome("web_form", IngestOutcome.ACCEPTED, n=1),
                outcome("web_form", IngestOutcome.REJECTED, "invalid_json", n=2),
            ],
            POLICY,
        )
    )
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in view.collect()
        for s in family.samples
    }
    assert samples == {
        ("leadloop_leads_received_total", (("source", "web_form"),)): 4,
        ("leadloop_leads_accepted_total", (("source", "web_form"),)): 1,
        (
            "leadloop_leads_rejected_total",
            (("reason", "invalid_json"), ("source", "web_form")),
        ): 1,
    }
    families = {f.name: f for f in view.collect()}
    assert set(families) == {name.removesuffix("_total") for name in METRICS}
    assert families["leadloop_first_response_seconds"].type == "histogram"
    assert families["leadloop_leads_received"].type == "counter"
    assert families["leadloop_leads_received"].documentation == (
        METRICS["leadloop_leads_received_total"].help
    )
    text = generate_latest(registry_for(view)).decode()
    assert 'leadloop_leads_received_total{source="web_form"} 4.0' in text
    assert 'leadloop_leads_rejected_total{reason="invalid_json",source="web_form"} 1.0' in text
    assert "# TYPE leadloop_leads_received_total counter" in text


# --- the metric list ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(METRICS))
def test_every_metric_is_documented_and_named_by_convention(name: str) -> None:
    d = METRICS[name]
    assert d.name == name
    assert name.startswith("leadloop_")
    assert d.help.strip()
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", name)
    assert all(re.fullmatch(r"[a-z_][a-z0-9_]*", label) for label in d.labels)
    assert len(set(d.labels)) == len(d.labels)
    if d.kind == "counter":
        assert name.endswith("_total")
    elif d.kind == "histogram":
        # In base units (seconds), or a unitless score.
        assert name.endswith(("_seconds", "_score"))
        assert list(d.buckets) == sorted(set(d.buckets))
    else:
        assert not name.endswith("_total")


def test_the_contract_counters_are_defined_with_their_labels() -> None:
    assert METRICS["leadloop_leads_received_total"].labels == ("source",)
    assert METRICS["leadloop_leads_accepted_total"].labels == ("source",)
    assert METRICS["leadloop_leads_duplicate_total"].labels == ("source",)
    assert set(METRICS["leadloop_leads_rejected_total"].labels) == {"source", "reason"}
    assert set(METRICS["leadloop_leads_assigned_total"].labels) == {"team", "strategy", "kind"}
    assert set(METRICS["leadloop_sla_breaches_total"].labels) == {"kind", "level", "team"}


def test_series_refuses_wrong_labels() -> None:
    with pytest.raises(AssertionError):
        series("leadloop_leads_received_total", source="web_form", lead_id="x")
    with pytest.raises(KeyError):
        series("leadloop_no_such_metric_total")
