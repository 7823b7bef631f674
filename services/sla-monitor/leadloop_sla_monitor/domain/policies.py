"""Which leads a policy covers: conditions on priority, source, team and stage.

A policy applies to a lead when every condition it lists holds (an absent condition
holds for any lead). For each clock kind the *first* policy in the file that covers the
lead wins, so a file reads top-down from the specific to the general, like a firewall.
A condition on a fact the monitor does not know yet (a lead's ``source`` arrives on
``leads.accepted``, which may be read after ``leads.assigned``) does not hold; the clock
is re-decided when the fact arrives, as long as none of its steps has fired.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from leadloop.events import Priority, Stage

__all__ = ["Conditions", "LeadFacts"]

_Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]


@dataclass(frozen=True, slots=True)
class LeadFacts:
    """What the monitor knows about a lead when it decides which policy covers it."""

    priority: Priority | None = None
    source: str | None = None
    team_id: str | None = None
    stage: Stage | None = None


class Conditions(BaseModel):
    """Each listed condition is a set of accepted values; all listed ones must hold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    priority: Annotated[frozenset[Priority], Field(min_length=1)] | None = None
    source: Annotated[frozenset[_Name], Field(min_length=1)] | None = None
    team: Annotated[frozenset[_Name], Field(min_length=1)] | None = None
    stage: Annotated[frozenset[Stage], Field(min_length=1)] | None = None

    def matches(self, lead: LeadFacts) -> bool:
        checks: tuple[tuple[frozenset[str] | None, str | None], ...] = (
            (self.priority, lead.priority),
            (self.source, lead.source),
            (self.team, lead.team_id),
            (self.stage, lead.stage),
        )
        return all(allowed is None or (v is not None and v in allowed) for allowed, v in checks)
