"""Reading the team ids the `team` label may carry from the assignment rule file.

Only ``teams[*].team_id`` is read: the metrics service depends on the file's shape,
not on the assignment service's code.
"""

from __future__ import annotations

from pathlib import Path

import yaml

__all__ = ["team_ids"]


def team_ids(path: Path) -> tuple[str, ...]:
    """The team ids of a rule file; fails loudly on a file without any."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    teams = data.get("teams") if isinstance(data, dict) else None
    ids = tuple(str(t["team_id"]) for t in teams or () if isinstance(t, dict) and t.get("team_id"))
    if not ids:
        raise ValueError(f"{path} lists no teams[*].team_id")
    return ids
