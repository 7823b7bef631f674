"""Rule sets: teams, reps and an ordered list of rules, validated by pydantic.

The first rule whose conditions all hold for a lead wins; its action names a team and
a strategy. A rule set carries a version that every decision is stamped with.
Loading from YAML happens in the adapter; this module only defines and checks shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from leadloop.events import LeadAccepted, RepStatus, Strategy

__all__ = ["Condition", "Rep", "Rule", "RuleSet", "Team", "matching_rule"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Condition(_Frozen):
    """One test on a lead attribute. Exactly one of the operators is set."""

    equals: str | int | float | bool | None = None
    in_: Annotated[tuple[str | int | float, ...] | None, Field(alias="in")] = None
    gte: float | None = None
    lt: float | None = None
    present: bool | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> Self:
        set_ops = [
            k for k in ("equals", "in_", "gte", "lt", "present") if getattr(self, k) is not None
        ]
        if not set_ops:
            raise ValueError("a condition needs one of: equals, in, gte, lt, present")
        return self

    def holds(self, value: Any) -> bool:
        if self.present is not None and (value is not None) != self.present:
            return False
        if self.equals is not None and value != self.equals:
            return False
        if self.in_ is not None and value not in self.in_:
            return False
        if self.gte is not None and (not isinstance(value, int | float) or value < self.gte):
            return False
        return not (
            self.lt is not None and (not isinstance(value, int | float) or value >= self.lt)
        )


class Rep(_Frozen):
    rep_id: str
    status: RepStatus = RepStatus.ACTIVE
    capacity: Annotated[int, Field(ge=0)] = 100
    weight: Annotated[int, Field(ge=0)] = 1


class Team(_Frozen):
    team_id: str
    manager_id: str | None = None
    reps: tuple[Rep, ...]


class Rule(_Frozen):
    rule_id: str
    #: Lead attribute name → condition; all must hold. Empty matches every lead.
    when: dict[str, Condition] = Field(default_factory=dict)
    team: str
    strategy: Strategy = Strategy.ROUND_ROBIN


#: Lead attributes a rule may test.
RULE_ATTRIBUTES = frozenset(
    {
        "source",
        "country",
        "region",
        "city",
        "industry",
        "product",
        "company_size",
        "budget",
        "campaign",
        "priority",
        "score",
        "is_returning",
    }
)


class RuleSet(_Frozen):
    version: str
    teams: tuple[Team, ...]
    rules: Annotated[tuple[Rule, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        team_ids = [t.team_id for t in self.teams]
        if len(set(team_ids)) != len(team_ids):
            raise ValueError("team ids must be unique")
        rep_ids = [r.rep_id for t in self.teams for r in t.reps]
        if len(set(rep_ids)) != len(rep_ids):
            raise ValueError("a rep belongs to exactly one team")
        for rule in self.rules:
            if rule.team not in team_ids:
                raise ValueError(f"rule {rule.rule_id} names unknown team {rule.team}")
            unknown = set(rule.when) - RULE_ATTRIBUTES
            if unknown:
                raise ValueError(f"rule {rule.rule_id} tests unknown attributes {sorted(unknown)}")
        if self.rules[-1].when:
            raise ValueError("the last rule must match every lead (an empty 'when')")
        return self

    def team(self, team_id: str) -> Team:
        return next(t for t in self.teams if t.team_id == team_id)


def matching_rule(lead: LeadAccepted, rules: RuleSet) -> Rule:
    """The first rule whose conditions all hold (the last rule matches everything)."""
    for rule in rules.rules:
        if all(cond.holds(_attribute(lead, name)) for name, cond in rule.when.items()):
            return rule
    raise AssertionError("rule sets end with a catch-all rule")


def _attribute(lead: LeadAccepted, name: str) -> Any:
    value = getattr(lead, name)
    return value.value if hasattr(value, "value") else value
