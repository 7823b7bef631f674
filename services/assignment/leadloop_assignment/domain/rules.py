"""Rule sets: teams, reps and an ordered list of rules, validated by pydantic.

Rules are tried in order; the first rule whose conditions all hold for a lead and that
applies decides (only a ``sticky`` rule can match and not apply: then the next matching
rule decides). Its action names a team and a strategy. A rule set carries a version
that every decision is stamped with. Loading from YAML happens in the adapter; this
module only defines and checks shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from leadloop.calendar import BusinessCalendar, CalendarSet
from leadloop.events import LeadAccepted, RepStatus, Strategy

__all__ = [
    "Condition",
    "Rep",
    "RosterEntry",
    "Rule",
    "RuleSet",
    "Team",
    "matching_rule",
    "matching_rules",
    "with_calendars",
    "with_roster",
]


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
    #: Most open leads the rep may own.
    capacity: Annotated[int, Field(ge=0)] = 100
    #: Share in ``weighted`` rotation (0: never gets a weighted lead). Other strategies
    #: ignore it.
    weight: Annotated[int, Field(ge=0)] = 1
    #: Most new leads per calendar day in the team's time zone (None: no daily cap).
    daily_cap: Annotated[int, Field(ge=0)] | None = None


class Team(_Frozen):
    team_id: str
    manager_id: str | None = None
    #: IANA time zone whose calendar day the reps' daily caps count in.
    timezone: str = "UTC"
    reps: tuple[Rep, ...] = ()
    #: Assign only inside the team's working hours (its business calendar); leads
    #: arriving outside them wait in the team's pool until the next working minute.
    working_hours: bool = False
    #: The business calendar, filled in from the calendars file (``with_calendars``)
    #: when ``working_hours`` is set; never written in the rules file.
    calendar: BusinessCalendar | None = Field(default=None, exclude=True)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)  # cached by zoneinfo: no file read after the first


class Rule(_Frozen):
    rule_id: str
    #: Lead attribute name → condition; all must hold. Empty matches every lead.
    when: dict[str, Condition] = Field(default_factory=dict)
    #: The team the rule routes to. Optional for ``sticky`` only: without it the previous
    #: owner is looked for in every team of the rule set; with it, only in that team.
    team: str | None = None
    strategy: Strategy = Strategy.ROUND_ROBIN
    #: The rep a ``direct`` rule names (a member of ``team``); only for ``direct``.
    rep_id: str | None = None


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
    #: How long a rep a lead was taken from (rep left, escalation) cannot get it back.
    reassign_cooldown_seconds: Annotated[int, Field(ge=0)] = 86_400

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        team_ids = [t.team_id for t in self.teams]
        if len(set(team_ids)) != len(team_ids):
            raise ValueError("team ids must be unique")
        rep_ids = [r.rep_id for t in self.teams for r in t.reps]
        if len(set(rep_ids)) != len(rep_ids):
            raise ValueError("a rep belongs to exactly one team")
        rule_ids = [r.rule_id for r in self.rules]
        if len(set(rule_ids)) != len(rule_ids):
            raise ValueError("rule ids must be unique")
        for rule in self.rules:
            _check_rule(rule, {t.team_id: t for t in self.teams})
        last = self.rules[-1]
        if last.when:
            raise ValueError("the last rule must match every lead (an empty 'when')")
        if last.strategy is Strategy.STICKY:
            raise ValueError("the last rule cannot be sticky: a sticky rule may fall through")
        return self

    def team(self, team_id: str) -> Team:
        return next(t for t in self.teams if t.team_id == team_id)

    def rep(self, rep_id: str) -> tuple[Team, Rep] | None:
        """The rep and their team, or None when no team of this rule set has them."""
        for team in self.teams:
            for rep in team.reps:
                if rep.rep_id == rep_id:
                    return team, rep
        return None


def _check_rule(rule: Rule, teams: dict[str, Team]) -> None:
    name = f"rule {rule.rule_id}"
    if rule.team is None and rule.strategy is not Strategy.STICKY:
        raise ValueError(f"{name} needs a team (only a sticky rule may leave it out)")
    if rule.team is not None and rule.team not in teams:
        raise ValueError(f"{name} names unknown team {rule.team}")
    if rule.strategy is Strategy.DIRECT:
        if rule.rep_id is None:
            raise ValueError(f"{name} is direct and needs a rep_id")
        assert rule.team is not None
        if rule.rep_id not in {r.rep_id for r in teams[rule.team].reps}:
            raise ValueError(f"{name} names rep {rule.rep_id}, who is not in team {rule.team}")
    elif rule.rep_id is not None:
        raise ValueError(f"{name}: rep_id is only for the direct strategy")
    unknown = set(rule.when) - RULE_ATTRIBUTES
    if unknown:
        raise ValueError(f"{name} tests unknown attributes {sorted(unknown)}")


def matching_rules(lead: LeadAccepted, rules: RuleSet) -> Iterator[Rule]:
    """Every rule whose conditions all hold, in order (the last matches everything)."""
    for rule in rules.rules:
        if all(cond.holds(_attribute(lead, name)) for name, cond in rule.when.items()):
            yield rule


def matching_rule(lead: LeadAccepted, rules: RuleSet) -> Rule:
    """The first rule whose conditions all hold (the last rule matches everything)."""
    for rule in matching_rules(lead, rules):
        return rule
    raise AssertionError("rule sets end with a catch-all rule")


def _attribute(lead: LeadAccepted, name: str) -> Any:
    value = getattr(lead, name)
    return value.value if hasattr(value, "value") else value


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """A rep as the roster (``crm.reps``) last described them."""

    rep_id: str
    team_id: str
    status: RepStatus
    capacity: int
    weight: int
    manager_id: str | None = None


def with_roster(rules: RuleSet, roster: Iterable[RosterEntry]) -> RuleSet:
    """The rule set with the roster's reps in place of the file's: a listed rep takes
    the roster's team, status, capacity and weight (the daily cap stays the file's).
    Reps the roster puts in a team the rule set does not have are left out: no rule can
    route to them."""
    listed = {e.rep_id: e for e in roster}
    if not listed:
        return rules
    known = {t.team_id for t in rules.teams}
    entries = {rep_id: e for rep_id, e in listed.items() if e.team_id in known}
    file_reps = {r.rep_id: r for t in rules.teams for r in t.reps}
    teams = []
    for team in rules.teams:
        reps = [r for r in team.reps if r.rep_id not in listed]
        for e in entries.values():
            if e.team_id == team.team_id:
                base = file_reps.get(e.rep_id, Rep(rep_id=e.rep_id))
                reps.append(
                    base.model_copy(
                        update={"status": e.status, "capacity": e.capacity, "weight": e.weight}
                    )
                )
        teams.append(team.model_copy(update={"reps": tuple(sorted(reps, key=_rep_id))}))
    return rules.model_copy(update={"teams": tuple(teams)})


def with_calendars(rules: RuleSet, calendars: CalendarSet) -> RuleSet:
    """The rule set with each ``working_hours`` team's business calendar filled in."""
    teams = tuple(
        t.model_copy(update={"calendar": calendars.for_team(t.team_id)}) if t.working_hours else t
        for t in rules.teams
    )
    return rules.model_copy(update={"teams": teams})


def _rep_id(rep: Rep) -> str:
    return rep.rep_id
