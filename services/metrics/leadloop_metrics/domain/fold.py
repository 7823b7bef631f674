"""How facts change the served series: a pure fold from facts to deltas.

The caller applies each fact at most once (event ids are recorded with the change) and
hands over the stored states of the leads the facts concern; :func:`step` returns the
new states and the change of every series. Counters of single events (ingest outcomes,
assignment decisions, escalation steps) count the event; everything else is the change
in the leads' contributions (``leads.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from leadloop_metrics.domain.facts import Assigned, Escalated, Fact, LeadFact, Outcome, Touched
from leadloop_metrics.domain.labels import TAKEN, Delta, LabelPolicy, add, series
from leadloop_metrics.domain.leads import LeadState, apply, contributions

__all__ = ["Step", "event_counters", "first_of_each", "merge", "step"]


@dataclass(frozen=True, slots=True)
class Step:
    #: The states of the leads the facts changed (all of them: unchanged ones too).
    states: dict[str, LeadState]
    delta: Delta


def merge(into: Delta, other: Mapping[tuple[str, tuple[tuple[str, str], ...]], float]) -> None:
    for key, value in other.items():
        into[key] = into.get(key, 0.0) + value


def event_counters(fact: Fact, policy: LabelPolicy) -> Delta:
    """The counters a single event increments, whatever else is known of its lead."""
    out: Delta = {}
    if isinstance(fact, Outcome):
        source = policy.source(fact.source)
        add(out, series("leadloop_leads_received_total", source=source), 1)
        if fact.outcome == "accepted":
            add(out, series("leadloop_leads_accepted_total", source=source), 1)
        elif fact.outcome == "duplicate":
            add(out, series("leadloop_leads_duplicate_total", source=source), 1)
        else:
            reason = policy.reject_reason(fact.reason)
            add(out, series("leadloop_leads_rejected_total", source=source, reason=reason), 1)
    elif isinstance(fact, Assigned):
        key = series(
            "leadloop_leads_assigned_total",
            team=policy.team(fact.team),
            strategy=fact.strategy,
            kind=fact.kind,
        )
        add(out, key, 1)
        if fact.kind in TAKEN and fact.previous_owner not in (None, fact.owner):
            taken = policy.rep(fact.previous_owner)
            add(out, series("leadloop_rep_leads_taken_total", kind=fact.kind, **taken), 1)
    elif isinstance(fact, Touched):
        if fact.touch and fact.rep is not None:
            add(out, series("leadloop_rep_touches_total", **policy.rep(fact.rep)), 1)
    elif isinstance(fact, Escalated):
        metric = "leadloop_sla_breaches_total" if fact.firing else "leadloop_sla_resolved_total"
        level = policy.level(fact.level)
        key = series(
            metric,
            kind=policy.escalation_kind(fact.kind),
            level=level,
            team=policy.team(fact.team),
        )
        add(out, key, 1)
        if fact.firing and fact.owner is not None:
            breach = series(
                "leadloop_rep_sla_breaches_total", level=level, **policy.rep(fact.owner)
            )
            add(out, breach, 1)
    return out


def first_of_each(facts: Iterable[Fact]) -> list[Fact]:
    """The facts in order, each event id once (a batch may carry a redelivery)."""
    seen: set[str] = set()
    unique: list[Fact] = []
    for f in facts:
        if f.event_id not in seen:
            seen.add(f.event_id)
            unique.append(f)
    return unique


def step(stored: Mapping[str, LeadState], facts: Iterable[Fact], policy: LabelPolicy) -> Step:
    """Apply ``facts`` in order on top of the ``stored`` lead states."""
    delta: Delta = {}
    by_lead: dict[str, list[LeadFact]] = {}
    for fact in facts:
        merge(delta, event_counters(fact, policy))
        if not isinstance(fact, Outcome):
            by_lead.setdefault(fact.lead_id, []).append(fact)
    states: dict[str, LeadState] = {}
    for lead_id, lead_facts in by_lead.items():
        before = stored.get(lead_id) or LeadState(lead_id)
        after = before
        for fact in lead_facts:
            after = apply(after, fact)
        states[lead_id] = after
        if after != before:
            merge(delta, contributions(before, policy, sign=-1.0))
            merge(delta, contributions(after, policy))
    return Step(states, {k: v for k, v in delta.items() if v != 0.0})
