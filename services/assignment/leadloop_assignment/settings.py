"""Assignment's settings (environment, ``LEADLOOP_`` prefix)."""

from __future__ import annotations

from pathlib import Path

from leadloop.settings import HttpSettings, ServiceSettings

__all__ = ["AssignmentSettings"]


class AssignmentSettings(ServiceSettings):
    http: HttpSettings = HttpSettings(port=18082)
    #: The rule set (teams, reps, rules); reloaded live when it changes.
    rules_file: Path = Path("config/rules.yaml")
