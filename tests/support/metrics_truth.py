"""What the metrics service must serve for a set of leads, worked out lead by lead from
what each lead went through — written from the metric definitions, sharing no code
with the service (nothing here imports ``leadloop_metrics``).

A :class:`Lead` is a lead's whole history as a test produced it: acceptance (with
whether the customer had won a lead before), assignment decisions, CRM activities and
stage changes, SLA ladder steps, customer satisfaction ratings. :func:`lead_samples`
gives every sample the lead adds to the served series; the samples of a run are the sum
over its leads plus the ingest counters of records that never became leads.

Some attributions are frozen by the service at the moment they become known ("the
owner when the win became known", "the team when the first response happened"); with
facts arriving from several topics in any interleaving, such a value is only well
defined when the lead had one owner and one team. :func:`lead_samples` therefore
refuses histories whose truth would depend on the order of arrival: a lead has one
team, a won or lost lead one assignment decision, and a lost lead reports an open stage
before its loss. The time a lead spent in a stage is fixed by the service when the next
stage is first known, so a stage entered earlier that arrives later (a touch on
crm.activities behind a stage change on crm.stage-changes) would not count: a lead
worked on is owned by its first decision and worked on after it, and a lead both touched
and moved by the CRM reports ``contacted`` first, at its first touch. Each topic's events
of a lead are taken to arrive in time order (one partition, produced in that order).

Amounts are counted here in hundredths (integers, exact in any order);
:func:`served_units` turns them into the currency units the service serves. Satisfaction
scores are whole numbers 1-5 and served as such (``_sum`` in score units).

Times are observed in whole milliseconds, the part of a millisecond cut off and a time
before its start counted as 0 (a histogram has no negative bucket); a ``_sum`` is counted
here in milliseconds and served in seconds. The buckets are the served contract, written
out here (:data:`TIME_BUCKETS`) rather than read from the service or from a scrape: a
truth that took them from what it checks could not find them wrong.
:func:`bucket_differences` compares them with the ``le`` labels of a scrape.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "AMOUNT_SERIES",
    "COVERED",
    "NEW_SERIES",
    "OPEN_STAGES",
    "TIME_BUCKETS",
    "TIME_HISTOGRAMS",
    "Activity",
    "Decision",
    "Difference",
    "LabelSets",
    "Lead",
    "Rating",
    "Sample",
    "StageChange",
    "Step",
    "bucket_differences",
    "describe",
    "differences",
    "followup",
    "key",
    "lead_samples",
    "roster",
    "served_units",
]

Sample = tuple[str, tuple[tuple[str, str], ...]]

OTHER = "other"
UNASSIGNED = "unassigned"
#: The open stages in funnel order: a lost lead is attributed to the furthest it reached.
OPEN_STAGES = ("new", "assigned", "contacted", "qualified", "proposal", "negotiation")
CLOSED = ("won", "lost")
TAKEN = ("reassigned", "reclaimed")

#: Series counted here in hundredths of the currency unit.
AMOUNT_SERIES = frozenset(
    {"leadloop_won_amount_total", "leadloop_pipeline_amount", "leadloop_rep_won_amount_total"}
)

#: The series the per-rep change and the leak ledger added (785d294).
NEW_SERIES = (
    "leadloop_leads_by_state",
    "leadloop_rep_open_leads",
    "leadloop_rep_first_response_seconds_count",
    "leadloop_rep_touches_total",
    "leadloop_rep_sla_breaches_total",
    "leadloop_rep_leads_won_total",
    "leadloop_rep_won_amount_total",
    "leadloop_rep_leads_lost_total",
    "leadloop_rep_leads_taken_total",
    "leadloop_rep_followups",
)

#: Repeat business and customer satisfaction ("Accountability you can see").
REPEAT_AND_SATISFACTION = (
    "leadloop_repurchases_total",
    "leadloop_satisfaction_score_bucket",
    "leadloop_satisfaction_score_sum",
    "leadloop_satisfaction_score_count",
    "leadloop_rep_satisfaction_score_bucket",
    "leadloop_rep_satisfaction_score_sum",
    "leadloop_rep_satisfaction_score_count",
)

#: The buckets of the satisfaction histograms: one per score, as the service labels them.
SATISFACTION_LE = ("1.0", "2.0", "3.0", "4.0", "5.0", "+Inf")

_FIRST_RESPONSE_LE = (
    *("60.0", "300.0", "900.0", "1800.0", "3600.0", "7200.0", "14400.0", "28800.0"),
    *("86400.0", "172800.0", "604800.0", "+Inf"),
)
#: Every time histogram the truth gives and its buckets as the exposition labels them
#: (``le``, seconds): the metric definitions' boundaries, written out.
#: ``leadloop_stage_duration_seconds`` is among them: its times are the events' own
#: (acceptance, first owner, first touch, the CRM's stage changes), no business calendar.
TIME_BUCKETS: dict[str, tuple[str, ...]] = {
    "leadloop_assignment_latency_seconds": (
        *("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0"),
        *("10.0", "30.0", "60.0", "+Inf"),
    ),
    "leadloop_first_response_seconds": _FIRST_RESPONSE_LE,
    "leadloop_rep_first_response_seconds": _FIRST_RESPONSE_LE,
    "leadloop_stage_duration_seconds": (
        *("300.0", "3600.0", "14400.0", "86400.0", "259200.0", "604800.0", "1209600.0"),
        *("2592000.0", "7776000.0", "+Inf"),
    ),
}
#: Their series, buckets and sums (in seconds) included.
TIME_HISTOGRAMS = tuple(
    f"{name}{part}" for name in TIME_BUCKETS for part in ("_bucket", "_sum", "_count")
)
#: Time sums are counted here in milliseconds.
_TIME_SUMS = frozenset(f"{name}_sum" for name in TIME_BUCKETS)

#: Every series name this truth gives; the histograms whole.
COVERED = tuple(
    dict.fromkeys(
        (
            "leadloop_leads_received_total",
            "leadloop_leads_accepted_total",
            "leadloop_leads_rejected_total",
            "leadloop_leads_assigned_total",
            "leadloop_funnel_entered_total",
            "leadloop_funnel_open_leads",
            "leadloop_pipeline_amount",
            "leadloop_pool_leads",
            "leadloop_leads_won_total",
            "leadloop_won_amount_total",
            "leadloop_leads_lost_total",
            "leadloop_sla_breaches_total",
            "leadloop_sla_resolved_total",
            "leadloop_sla_open_clocks",
            *TIME_HISTOGRAMS,
            *NEW_SERIES,
            *REPEAT_AND_SATISFACTION,
        )
    )
)


def key(name: str, **labels: str) -> Sample:
    return name, tuple(sorted(labels.items()))


def roster(rules_file: Path) -> dict[str, str]:
    """Rep id -> team id, from ``teams[*].reps[*].rep_id`` of an assignment rule file."""
    data = yaml.safe_load(rules_file.read_text(encoding="utf-8"))
    return {
        rep["rep_id"]: team["team_id"] for team in data["teams"] for rep in team.get("reps", [])
    }


@dataclass(frozen=True)
class LabelSets:
    """The label values served: configured sources and teams, the roster's reps; any
    other value is ``other``."""

    sources: frozenset[str]
    teams: frozenset[str]
    reps: Mapping[str, str] = field(default_factory=dict)

    def source(self, value: str) -> str:
        return value if value in self.sources else OTHER

    def team(self, value: str | None) -> str:
        if value is None:
            return UNASSIGNED
        return value if value in self.teams else OTHER

    def rep(self, rep_id: str) -> dict[str, str]:
        """``team`` is the rep's team on the roster, not the lead's."""
        if rep_id not in self.reps:
            return {"team": OTHER, "rep": OTHER}
        return {"team": self.team(self.reps[rep_id]), "rep": rep_id}


@dataclass(frozen=True)
class Decision:
    """One event on leads.assigned."""

    at: datetime
    kind: str  # initial | reassigned | reclaimed | pooled
    strategy: str
    owner: str | None
    previous_owner: str | None = None

    @property
    def owned(self) -> bool:
        return self.owner is not None and self.kind != "pooled"


@dataclass(frozen=True)
class Activity:
    at: datetime
    rep: str
    kind: str  # call | email | message | meeting | visit | note

    @property
    def touch(self) -> bool:
        return self.kind != "note"


@dataclass(frozen=True)
class StageChange:
    at: datetime
    stage: str
    rep: str
    amount_cents: int | None = None
    loss_reason: str | None = None


@dataclass(frozen=True)
class Step:
    """One first-response ladder step (one ``escalation_id``): fired, maybe resolved."""

    level: int
    owner: str | None
    breached_at: datetime
    resolved: bool


@dataclass(frozen=True)
class Rating:
    """One event on crm.satisfaction: a 1-5 score, about ``rep`` when the CRM knows."""

    at: datetime
    score: int
    rep: str | None = None


@dataclass
class Lead:
    lead_id: str
    source: str
    priority: str
    team: str
    #: leads.accepted's ``accepted_at``: where assignment latency and time in ``new`` start.
    accepted_at: datetime
    decisions: list[Decision] = field(default_factory=list)
    activities: list[Activity] = field(default_factory=list)
    stages: list[StageChange] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    #: leads.accepted said the customer had won a lead before.
    customer_won_before: bool = False
    ratings: list[Rating] = field(default_factory=list)


def _first(items: list[datetime]) -> datetime | None:
    return min(items, default=None)


def followup(lead: Lead) -> str | None:
    """How the first owner's first response went, None when nobody ever owned the lead.

    The response is the earliest touch or CRM stage change; it is late when a
    first-response step of the first owner (or of no owner) had fired at or before it."""
    owning = [d for d in lead.decisions if d.owned]
    if not owning:
        return None
    first_owner = min(owning, key=lambda d: d.at).owner
    response = _first([a.at for a in lead.activities if a.touch] + [c.at for c in lead.stages])
    breach = _first([s.breached_at for s in lead.steps if s.owner in (None, first_owner)])
    if response is None:
        return "pending" if breach is None else "missed"
    return "late" if breach is not None and breach <= response else "within_sla"


def _check(lead: Lead) -> None:
    """Refuse a history whose truth would depend on the order the topics interleave."""
    closed = [c for c in lead.stages if c.stage in CLOSED]
    if closed:
        assert len(lead.decisions) == 1, f"{lead.lead_id}: closed leads have one decision"
        last = max(lead.stages, key=lambda c: c.at)
        assert len(closed) == 1, f"{lead.lead_id}: a lead closes once"
        assert last is closed[0], f"{lead.lead_id}: closing is its last stage change"
    if any(c.stage == "lost" for c in lead.stages):
        assert any(c.stage in OPEN_STAGES for c in lead.stages), (
            f"{lead.lead_id}: a lost lead reports an open stage before its loss"
        )
    assert all(1 <= r.score <= 5 for r in lead.ratings), f"{lead.lead_id}: scores are 1-5"
    # The time in a stage is fixed when the next stage is first known, so an entry that
    # arrives after it and falls in between would be too late. Each topic arrives in
    # time order; the topics race, so the first touch and the CRM's stage changes must
    # not put two different times on the lead's path after its first owner.
    touches = [a.at for a in lead.activities if a.touch]
    moved = [c.at for c in lead.stages]
    if (touches or moved) and lead.decisions:
        first = min(lead.decisions, key=lambda d: d.at)
        assert first.owned, f"{lead.lead_id}: a lead worked on is owned by its first decision"
        assert min(touches + moved) >= first.at, f"{lead.lead_id}: worked on after its owner"
    if touches and moved:
        first_moved = min(lead.stages, key=lambda c: c.at)
        assert (first_moved.stage, first_moved.at) == ("contacted", min(touches)), (
            f"{lead.lead_id}: the CRM reports contacted first, at the first touch"
        )


def _observe(
    exp: Counter[Sample], name: str, bounds: Mapping[str, float], value: int, **labels: str
) -> None:
    """One observation into a histogram: every bucket whose bound (in the unit of
    ``value``) it does not exceed, the sum and the count."""
    for le, bound in bounds.items():
        if value <= bound:
            exp[key(f"{name}_bucket", le=le, **labels)] += 1
    exp[key(f"{name}_sum", **labels)] += value
    exp[key(f"{name}_count", **labels)] += 1


def _bounds(les: tuple[str, ...], scale: int) -> dict[str, float]:
    """``le`` label -> its bound times ``scale``, exact (``0.005`` s is 5 ms)."""
    return {le: float("inf") if le == "+Inf" else int(Decimal(le) * scale) for le in les}


_SCORE_BOUNDS = _bounds(SATISFACTION_LE, 1)
#: In milliseconds.
_TIME_BOUNDS = {name: _bounds(les, 1000) for name, les in TIME_BUCKETS.items()}


def _rated(exp: Counter[Sample], name: str, score: int, **labels: str) -> None:
    """One score into a satisfaction histogram: every bucket from its own up."""
    _observe(exp, name, _SCORE_BOUNDS, score, **labels)


def _timed(exp: Counter[Sample], name: str, start: datetime, end: datetime, **labels: str) -> None:
    """The time from ``start`` to ``end`` into a time histogram, in whole milliseconds:
    what is left of a millisecond is dropped, and an end before its start is 0."""
    micros = (end - start) // timedelta(microseconds=1)
    _observe(exp, name, _TIME_BOUNDS[name], max(micros, 0) // 1000, **labels)


def _entered(lead: Lead) -> dict[str, datetime]:
    """When the lead first entered each stage: ``new`` at its acceptance, ``assigned``
    at its first owner, ``contacted`` at its first touch, and every stage the CRM
    reported (a stage entered again keeps its first time)."""
    starts = [
        ("new", lead.accepted_at),
        *(("assigned", d.at) for d in lead.decisions if d.owned),
        *(("contacted", a.at) for a in lead.activities if a.touch),
        *((c.stage, c.at) for c in lead.stages),
    ]
    out: dict[str, datetime] = {}
    for stage, when in starts:
        out[stage] = min(out.get(stage, when), when)
    return out


def lead_samples(lead: Lead, labels: LabelSets) -> Counter[Sample]:
    """Every sample one accepted lead adds to the served series (amounts in hundredths,
    time sums in milliseconds)."""
    _check(lead)
    exp: Counter[Sample] = Counter()
    source = labels.source(lead.source)
    team = labels.team(lead.team)
    touches = [a for a in lead.activities if a.touch]
    owning = sorted((d for d in lead.decisions if d.owned), key=lambda d: d.at)
    latest = max(lead.decisions, key=lambda d: d.at, default=None)
    stages = sorted(lead.stages, key=lambda c: c.at)
    now = stages[-1].stage if stages else None

    # Counted per event.
    exp[key("leadloop_leads_accepted_total", source=source)] += 1
    exp[key("leadloop_leads_received_total", source=source)] += 1
    for d in lead.decisions:
        exp[key("leadloop_leads_assigned_total", team=team, strategy=d.strategy, kind=d.kind)] += 1
        if d.kind in TAKEN and d.previous_owner is not None and d.previous_owner != d.owner:
            taken = key(
                "leadloop_rep_leads_taken_total", kind=d.kind, **labels.rep(d.previous_owner)
            )
            exp[taken] += 1
    for a in touches:
        exp[key("leadloop_rep_touches_total", **labels.rep(a.rep))] += 1
    for s in lead.steps:
        level = str(s.level)
        exp[key("leadloop_sla_breaches_total", kind="first_response", level=level, team=team)] += 1
        if s.resolved:
            resolved = key(
                "leadloop_sla_resolved_total", kind="first_response", level=level, team=team
            )
            exp[resolved] += 1
        if s.owner is not None:
            exp[key("leadloop_rep_sla_breaches_total", level=level, **labels.rep(s.owner))] += 1
    if any(not s.resolved for s in lead.steps):
        exp[key("leadloop_sla_open_clocks", kind="first_response")] += 1

    # The funnel: each stage the lead ever entered, once.
    reached = {"new", *(c.stage for c in stages)}
    if owning:
        reached.add("assigned")
    if touches:
        reached.add("contacted")
    for stage in reached:
        exp[key("leadloop_funnel_entered_total", stage=stage, source=source)] += 1
    # Times: acceptance to the first decision (pooled too), the first owner to the
    # first touch, and each stage left to the next one entered.
    if lead.decisions:
        first_decided = min(d.at for d in lead.decisions)
        _timed(exp, "leadloop_assignment_latency_seconds", lead.accepted_at, first_decided)
    # The first response is owed by the first owner, whoever touches the lead.
    first_owner = owning[0].owner if owning else None
    if first_owner is not None and touches:
        start, end = owning[0].at, min(a.at for a in touches)
        by = {"team": team, "priority": lead.priority}
        _timed(exp, "leadloop_first_response_seconds", start, end, **by)
        by_rep = labels.rep(first_owner)
        _timed(exp, "leadloop_rep_first_response_seconds", start, end, **by_rep)
    if lead.decisions:  # a stage's time waits for the lead's team
        rank = (*OPEN_STAGES, *CLOSED).index
        path = sorted(_entered(lead).items(), key=lambda e: (e[1], rank(e[0])))
        for (left, start), (_, end) in pairwise(path):
            if left not in CLOSED:
                _timed(exp, "leadloop_stage_duration_seconds", start, end, stage=left, team=team)
    status = followup(lead)
    if first_owner is not None and status is not None:
        exp[key("leadloop_rep_followups", status=status, **labels.rep(first_owner))] += 1

    # Where the lead is now.
    lead_team = labels.team(lead.team if latest is not None else None)
    amounts = [c.amount_cents for c in stages if c.amount_cents is not None]
    owner_now = latest.owner if latest is not None and latest.owned else None
    if now in CLOSED:
        state = now
        if now == "won":
            exp[key("leadloop_leads_won_total", team=team, source=source)] += 1
            cents = amounts[-1] if amounts else 0
            exp[key("leadloop_won_amount_total", team=team, source=source)] += cents
            if owner_now is not None:
                exp[key("leadloop_rep_leads_won_total", **labels.rep(owner_now))] += 1
                exp[key("leadloop_rep_won_amount_total", **labels.rep(owner_now))] += cents
            # Repeat business: the win of a customer who had won a lead before.
            if lead.customer_won_before:
                exp[key("leadloop_repurchases_total", team=team)] += 1
        else:
            furthest = max((s for s in reached if s in OPEN_STAGES), key=OPEN_STAGES.index)
            reason = stages[-1].loss_reason or OTHER
            exp[key("leadloop_leads_lost_total", stage=furthest, reason=reason, team=team)] += 1
            if owner_now is not None:
                exp[key("leadloop_rep_leads_lost_total", **labels.rep(owner_now))] += 1
    else:
        stage = now or ("contacted" if touches else "assigned" if owner_now else "new")
        exp[key("leadloop_funnel_open_leads", stage=stage, team=lead_team)] += 1
        if amounts:
            exp[key("leadloop_pipeline_amount", stage=stage, team=lead_team)] += amounts[-1]
        if latest is None:
            state = "awaiting_assignment"
        elif owner_now is None:
            state = "pooled"
            exp[key("leadloop_pool_leads", team=lead_team)] += 1
        else:
            exp[key("leadloop_rep_open_leads", **labels.rep(owner_now))] += 1
            breached = any(not s.resolved for s in lead.steps)
            state = "owned_breached" if breached else "owned_within_sla"
    exp[key("leadloop_leads_by_state", state=state, team=lead_team)] += 1

    # Customer satisfaction: each rating once, for the lead's team once an assignment
    # decision named it (a lead never decided has no team to rate), and for the rep the
    # rating is about (the rep's own team on the roster; none when it names nobody).
    for r in lead.ratings:
        if lead.decisions:
            _rated(exp, "leadloop_satisfaction_score", r.score, team=team)
        if r.rep is not None:
            _rated(exp, "leadloop_rep_satisfaction_score", r.score, **labels.rep(r.rep))
    return exp


def served_units(expected: Counter[Sample]) -> dict[Sample, float]:
    """The non-zero expected samples in the units the service serves: amounts from
    hundredths, time sums from milliseconds to seconds."""
    scale = {**dict.fromkeys(AMOUNT_SERIES, 100), **dict.fromkeys(_TIME_SUMS, 1000)}
    return {k: v / scale.get(k[0], 1) for k, v in expected.items() if v}


@dataclass(frozen=True)
class Difference:
    sample: Sample
    expected: float | None
    served: float | None

    def __str__(self) -> str:
        name, labels = self.sample
        shown = ",".join(f"{k}={v}" for k, v in labels)
        return f"{name}{{{shown}}} expected {self.expected} served {self.served}"


def differences(
    expected: Mapping[Sample, float], served: Mapping[Sample, float]
) -> list[Difference]:
    """Every sample of a :data:`COVERED` series where the two disagree (absent is 0)."""
    names = set(COVERED)
    keys = {k for k in (*expected, *served) if k[0] in names}
    return [
        Difference(k, expected.get(k), served.get(k))
        for k in sorted(keys)
        if expected.get(k, 0.0) != served.get(k, 0.0)
    ]


def bucket_differences(exposition: str) -> list[str]:
    """How the ``le`` labels of the time histograms in a scrape differ from
    :data:`TIME_BUCKETS`, one line per histogram and label set (empty: they agree; a
    histogram without samples in the scrape is reported too)."""
    seen: dict[str, dict[tuple[tuple[str, str], ...], list[str]]] = defaultdict(dict)
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            name = s.name.removesuffix("_bucket")
            if s.name.endswith("_bucket") and name in TIME_BUCKETS:
                rest = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                seen[name].setdefault(rest, []).append(s.labels["le"])
    out = [f"{name}: no buckets served" for name in TIME_BUCKETS if name not in seen]
    for name, by_labels in sorted(seen.items()):
        for rest, les in sorted(by_labels.items()):
            if tuple(les) != TIME_BUCKETS[name]:
                out.append(f"{name}{dict(rest)}: served le {les}, expected {TIME_BUCKETS[name]}")
    return out


def describe(diffs: list[Difference], per_series: int = 5) -> str:
    """The differing series by name, with how many samples of each and a few of them."""
    by_name: dict[str, list[Difference]] = defaultdict(list)
    for d in diffs:
        by_name[d.sample[0]].append(d)
    lines = [f"{len(diffs)} samples differ in {len(by_name)} series:"]
    for name, ds in sorted(by_name.items()):
        lines.append(f"  {name}: {len(ds)}")
        lines.extend(f"    {d}" for d in ds[:per_series])
    return "\n".join(lines)
