"""Reading the team ids the `team` label may carry from the assignment rule file.

Only ``teams[*].team_id`` is read: the metrics service depends on the file's shape,
not on the assignment service's code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from leadloop.config_file import load_yaml

__all__ = ["team_ids"]


class _Team(BaseModel):
    model_config = ConfigDict(extra="ignore")

    team_id: Annotated[str, Field(min_length=1)]


class _RuleFile(BaseModel):
    """The part of the rule file read here; the rest is assignment's to validate."""

    model_config = ConfigDict(extra="ignore")

    teams: Annotated[list[_Team], Field(min_length=1)]


def team_ids(path: Path) -> tuple[str, ...]:
    """The team ids of a rule file; raises ``ConfigFileError`` naming the file and the
    field when it lists no teams or a team without its ``team_id``."""
    return tuple(team.team_id for team in load_yaml(path, _RuleFile).teams)
