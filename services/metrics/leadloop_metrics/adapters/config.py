"""Reading the team ids the `team` label may carry, and the roster the `rep` label may
carry, from the assignment rule file.

Only ``teams[*].team_id`` and ``teams[*].reps[*].rep_id`` are read: the metrics service
depends on the file's shape, not on the assignment service's code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from leadloop.config_file import load_yaml
from leadloop_metrics.domain.labels import LabelPolicy

__all__ = ["label_policy", "roster", "team_ids"]


class _Rep(BaseModel):
    model_config = ConfigDict(extra="ignore")

    rep_id: Annotated[str, Field(min_length=1)]


class _Team(BaseModel):
    model_config = ConfigDict(extra="ignore")

    team_id: Annotated[str, Field(min_length=1)]
    reps: list[_Rep] = Field(default_factory=list)


class _RuleFile(BaseModel):
    """The part of the rule file read here; the rest is assignment's to validate."""

    model_config = ConfigDict(extra="ignore")

    teams: Annotated[list[_Team], Field(min_length=1)]


def team_ids(path: Path) -> tuple[str, ...]:
    """The team ids of a rule file; raises ``ConfigFileError`` naming the file and the
    field when it lists no teams or a team without its ``team_id``."""
    return tuple(team.team_id for team in load_yaml(path, _RuleFile).teams)


def roster(path: Path) -> dict[str, str]:
    """Rep id -> team id for every rep of a rule file (a rep listed twice: the last
    team; assignment refuses such a file)."""
    return {
        rep.rep_id: team.team_id for team in load_yaml(path, _RuleFile).teams for rep in team.reps
    }


def label_policy(
    sources: tuple[str, ...], teams: tuple[str, ...] | None, rules_file: Path
) -> LabelPolicy:
    """The label values served: ``sources``, ``teams`` (None: the rule file's) and the
    rule file's roster."""
    return LabelPolicy(
        sources=frozenset(sources),
        teams=frozenset(teams if teams is not None else team_ids(rules_file)),
        reps=roster(rules_file),
    )
