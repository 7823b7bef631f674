"""The rule set from a YAML file, reloaded live when the file changes.

A change takes effect for leads decided after it; a file that fails validation is
refused (the previous rule set stays in force) and the refusal is logged. Teams with
``working_hours`` get their business calendar from the calendars file.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from leadloop.calendar import CalendarSet
from leadloop.logging import get_logger
from leadloop_assignment.domain.rules import RuleSet, with_calendars

__all__ = ["RuleFile", "load_calendars", "load_rules"]

log = get_logger(__name__)


def load_rules(path: Path, calendars: CalendarSet | None = None) -> RuleSet:
    with path.open(encoding="utf-8") as f:
        rules = RuleSet.model_validate(yaml.safe_load(f))
    if calendars is None:
        if any(t.working_hours for t in rules.teams):
            raise ValueError("a team keeps working hours but no calendars file was given")
        return rules
    return with_calendars(rules, calendars)


def load_calendars(path: Path) -> CalendarSet:
    with path.open(encoding="utf-8") as f:
        return CalendarSet.model_validate(yaml.safe_load(f))


class RuleFile:
    def __init__(self, path: Path, calendars: CalendarSet | None = None) -> None:
        self._path = path
        self._calendars = calendars
        self._mtime = os.stat(path).st_mtime_ns
        self._rules = load_rules(path, calendars)

    def current(self) -> RuleSet:
        try:
            mtime = os.stat(self._path).st_mtime_ns
        except OSError:
            return self._rules
        if mtime != self._mtime:
            self._mtime = mtime
            try:
                rules = load_rules(self._path, self._calendars)
            except (ValidationError, ValueError, yaml.YAMLError, OSError) as exc:
                log.error(
                    "rules_reload_refused", error=type(exc).__name__, version=self._rules.version
                )
            else:
                log.info("rules_reloaded", old=self._rules.version, new=rules.version)
                self._rules = rules
        return self._rules
