"""Routing and fairness held against the roster, for the independent checker.

Read from plain YAML and JSON, never through assignment's models: the rule set
(``config/rules.yaml``: teams, reps, rules), the roster updates on ``crm.reps``, the
leads' routing attributes on ``leads.accepted`` and the decisions on ``leads.assigned``.
:func:`compare_routing` is pure and unit tested in ``tests/support/test_checker.py``.

What it holds the decisions to (the rule set's header and
``leadloop_assignment.domain.routing``'s docstring state the promises):

- **routing**: a lead's first decision is for the team of the first rule whose
  conditions hold; a ``sticky`` rule decides only when it gives the lead back to the
  previous owner, a ``direct`` rule gives it to the rule's rep or pools it, a ``pool``
  rule pools it;
- **eligibility**: every owner, first decision or move, was a rep of the decision's
  team and ``active`` on the roster in force at ``assigned_at`` (the file's entry,
  overridden by the latest ``crm.reps`` entry updated by then);
- **fairness**: a rotation team whose reps stayed on one roster all run (no update that
  changed a rep's team, status or weight, no daily cap or capacity reached) spreads
  the first decisions of its rotation rules evenly — ``round_robin``: most minus fewest
  per rep at most 1; ``weighted``: every rep within 1 of ``N · weight / Σ weight``.
  Every move (reassignment, reclaim, pool drain) in the team takes a turn of the same
  rotation and may skip a rep cooling down from that lead, so each one may widen the
  bound by one: the bound checked is ``1 + moves``. ``least_loaded`` promises no count.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any

import yaml

__all__ = [
    "Decision",
    "RepEntry",
    "Routing",
    "RoutingReport",
    "Rule",
    "TeamSpread",
    "compare_routing",
    "decision_of",
    "parse_rules",
    "rep_entry_of",
]

FIRST = frozenset({"initial", "pooled"})
ROTATIONS = frozenset({"round_robin", "weighted"})
_SHOWN = 10


@dataclass(frozen=True, slots=True)
class RepEntry:
    """One roster entry: the file's (``updated_at`` None) or one on ``crm.reps``."""

    rep_id: str
    team_id: str
    status: str = "active"
    weight: int = 1
    capacity: int = 100
    daily_cap: int | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    rule_id: str
    strategy: str
    team: str | None
    when: Mapping[str, Mapping[str, Any]]
    rep_id: str | None = None


@dataclass(frozen=True, slots=True)
class Routing:
    """The rule set as the checker reads it."""

    reps: Mapping[str, RepEntry]
    rules: Sequence[Rule]


@dataclass(frozen=True, slots=True)
class Decision:
    """One ``leads.assigned`` record."""

    assignment_id: str
    lead_id: str
    kind: str
    owner_id: str | None
    team_id: str
    assigned_at: datetime


def parse_rules(text: str) -> Routing:
    """``config/rules.yaml`` (its teams, reps and rules; defaults from its header)."""
    doc = yaml.safe_load(text)
    reps: dict[str, RepEntry] = {}
    for team in doc.get("teams") or []:
        for r in team.get("reps") or []:
            reps[r["rep_id"]] = RepEntry(
                rep_id=r["rep_id"],
                team_id=team["team_id"],
                status=r.get("status", "active"),
                weight=int(r.get("weight", 1)),
                capacity=int(r.get("capacity", 100)),
                daily_cap=r.get("daily_cap"),
            )
    rules = [
        Rule(
            rule_id=r["rule_id"],
            strategy=r.get("strategy", "round_robin"),
            team=r.get("team"),
            when=r.get("when") or {},
            rep_id=r.get("rep_id"),
        )
        for r in doc.get("rules") or []
    ]
    return Routing(reps, rules)


def rep_entry_of(body: Mapping[str, Any], file: Mapping[str, RepEntry]) -> RepEntry:
    """A ``crm.reps`` record (JSON body) as a roster entry; the daily cap stays the
    file's (the roster carries none)."""
    known = file.get(body["rep_id"])
    return RepEntry(
        rep_id=body["rep_id"],
        team_id=body["team_id"],
        status=body.get("status", "active"),
        weight=int(body.get("weight", 1)),
        capacity=int(body.get("capacity", 100)),
        daily_cap=known.daily_cap if known is not None else None,
        updated_at=datetime.fromisoformat(body["updated_at"]),
    )


def decision_of(body: Mapping[str, Any]) -> Decision:
    return Decision(
        assignment_id=body["assignment_id"],
        lead_id=body["lead_id"],
        kind=body["kind"],
        owner_id=body.get("owner_id"),
        team_id=body["team_id"],
        assigned_at=datetime.fromisoformat(body["assigned_at"]),
    )


def _holds(cond: Mapping[str, Any], value: Any) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if "present" in cond and (value is not None) != cond["present"]:
        return False
    if "equals" in cond and value != cond["equals"]:
        return False
    if "in" in cond and value not in cond["in"]:
        return False
    if "gte" in cond and (not number or value < cond["gte"]):
        return False
    return not ("lt" in cond and (not number or value >= cond["lt"]))


def _matching(lead: Mapping[str, Any], rules: Sequence[Rule]) -> Iterable[Rule]:
    for rule in rules:
        if all(_holds(c, lead.get(name)) for name, c in rule.when.items()):
            yield rule


@dataclass(frozen=True, slots=True)
class TeamSpread:
    team_id: str
    strategy: str
    counts: Mapping[str, int]
    #: Moves in the team during the run: each may widen the bound by one.
    moves: int
    #: Most minus fewest (round robin) or largest distance from the share (weighted).
    spread: Fraction
    #: Why the team's fairness was not checked (its roster changed, a cap was reached).
    unchecked: str = ""

    @property
    def bound(self) -> int:
        return 1 + self.moves

    @property
    def fair(self) -> bool:
        return bool(self.unchecked) or self.spread <= self.bound


@dataclass(frozen=True, slots=True)
class RoutingReport:
    decisions: int
    #: A first decision for another team (or owner, for direct and pool rules) than the
    #: rules give the lead's attributes.
    misrouted: tuple[str, ...]
    #: An owner not active in the decision's team on the roster at ``assigned_at``.
    ineligible: tuple[str, ...]
    fairness: Mapping[str, TeamSpread] = field(default_factory=dict)

    @property
    def unfair(self) -> tuple[str, ...]:
        return tuple(
            f"{t.team_id} {t.strategy} spread {float(t.spread):g} > {t.bound}: "
            f"{dict(sorted(t.counts.items()))}"
            for t in self.fairness.values()
            if not t.fair
        )

    @property
    def problems(self) -> dict[str, tuple[str, ...]]:
        lists = {"misrouted": self.misrouted, "ineligible": self.ineligible}
        lists["unfair"] = self.unfair
        return {name: ids for name, ids in lists.items() if ids}

    def summary(self) -> str:
        teams = ", ".join(
            f"{t.team_id}: {t.unchecked or f'spread {float(t.spread):g} <= {t.bound}'}"
            for t in self.fairness.values()
        )
        return f"routing: decisions={self.decisions} fairness {{{teams}}}"


def _first_rule(lead: Mapping[str, Any], d: Decision, routing: Routing) -> Rule | None:
    """The rule that decides ``lead`` given its first decision ``d``: a sticky rule only
    when the decision gave the lead back to its previous owner (from the rule's team)."""
    for rule in _matching(lead, routing.rules):
        if rule.strategy != "sticky":
            return rule
        previous = lead.get("previous_owner_id")
        entry = routing.reps.get(previous) if previous else None
        if (
            lead.get("is_returning")
            and d.owner_id is not None
            and d.owner_id == previous
            and (rule.team is None or (entry is not None and entry.team_id == rule.team))
        ):
            return rule
    return None


def _misrouted(rule: Rule | None, d: Decision, routing: Routing) -> bool:
    if rule is None:
        return True
    if rule.strategy == "sticky":
        entry = routing.reps.get(d.owner_id or "")
        return entry is None or d.team_id != entry.team_id
    if d.team_id != rule.team:
        return True
    if rule.strategy == "pool":
        return d.owner_id is not None
    if rule.strategy == "direct":
        return d.owner_id not in (None, rule.rep_id)
    return False


def compare_routing(
    leads: Mapping[str, Mapping[str, Any]],
    decisions: Iterable[Decision],
    routing: Routing,
    updates: Iterable[RepEntry] = (),
) -> RoutingReport:
    """Every decision of ``leads.assigned`` against the rules and the roster.

    ``leads``: lead id → its ``leads.accepted`` body; ``updates``: the ``crm.reps``
    entries. Redelivered decisions (the same assignment id) count once.
    """
    history: dict[str, list[RepEntry]] = defaultdict(list)
    for entry in updates:
        history[entry.rep_id].append(entry)
    for entries in history.values():
        entries.sort(key=lambda e: e.updated_at or datetime.min)

    def in_force(rep_id: str, at: datetime) -> RepEntry | None:
        found = routing.reps.get(rep_id)
        for entry in history.get(rep_id, ()):
            if entry.updated_at is not None and entry.updated_at <= at:
                found = entry
        return found

    unique = {d.assignment_id: d for d in decisions}
    misrouted: set[str] = set()
    ineligible: set[str] = set()
    rotation: dict[str, tuple[str, Counter[str]]] = {}
    moves: Counter[str] = Counter()
    per_rep: Counter[str] = Counter()
    for d in unique.values():
        if d.owner_id is not None:
            per_rep[d.owner_id] += 1
            held = in_force(d.owner_id, d.assigned_at)
            if held is None or held.team_id != d.team_id or held.status != "active":
                ineligible.add(d.lead_id)
        if d.kind not in FIRST:
            moves[d.team_id] += 1
            continue
        lead = leads.get(d.lead_id)
        if lead is None:
            continue  # a decision for a lead never accepted: the assignment check says so
        rule = _first_rule(lead, d, routing)
        if _misrouted(rule, d, routing):
            misrouted.add(d.lead_id)
        elif rule is not None and rule.strategy in ROTATIONS and d.owner_id is not None:
            strategy, counts = rotation.setdefault(d.team_id, (rule.strategy, Counter()))
            if strategy == rule.strategy:
                counts[d.owner_id] += 1

    fairness: dict[str, TeamSpread] = {}
    for team, (strategy, counts) in sorted(rotation.items()):
        members = {r for r, e in routing.reps.items() if e.team_id == team}
        members |= {r for r, es in history.items() if any(e.team_id == team for e in es)}
        weights = {}
        unchecked = ""
        for rep in sorted(members):
            base = routing.reps.get(rep)
            entries = [e for e in (base, *history.get(rep, ())) if e is not None]
            if len({(e.team_id, e.status, e.weight) for e in entries}) > 1:
                unchecked = f"{rep} changed during the run"
            last = entries[-1]
            if last.daily_cap is not None and per_rep[rep] >= last.daily_cap:
                unchecked = f"{rep} reached its daily cap"
            if per_rep[rep] >= last.capacity:
                unchecked = f"{rep} reached its capacity"
            if last.team_id == team and last.status == "active":
                if strategy == "weighted" and last.weight <= 0:
                    continue
                weights[rep] = last.weight
        full = {rep: counts.get(rep, 0) for rep in weights}
        full |= {rep: n for rep, n in counts.items() if rep not in weights}
        fairness[team] = TeamSpread(
            team_id=team,
            strategy=strategy,
            counts=full,
            moves=moves[team],
            spread=_spread(strategy, full, weights),
            unchecked=unchecked,
        )
    return RoutingReport(
        decisions=len(unique),
        misrouted=tuple(sorted(misrouted)),
        ineligible=tuple(sorted(ineligible)),
        fairness=fairness,
    )


def _spread(strategy: str, counts: Mapping[str, int], weights: Mapping[str, int]) -> Fraction:
    if not counts:
        return Fraction(0)
    if strategy == "round_robin":
        return Fraction(max(counts.values()) - min(counts.values()))
    total, weight = sum(counts.values()), sum(weights.values())
    if weight == 0:
        return Fraction(total)
    return max(abs(n - Fraction(total * weights.get(rep, 0), weight)) for rep, n in counts.items())


def leads_of(records: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """``leads.accepted`` records → lead id → body (the last of redeliveries)."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        body = json.loads(r.value)
        out[body["lead_id"]] = body
    return out
