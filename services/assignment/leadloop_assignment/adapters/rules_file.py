"""The rule set from a YAML file, reloaded live when the file changes.

A change takes effect for leads decided after it; a file that fails validation is
refused (the previous rule set stays in force) and the refusal is logged. Teams with
``working_hours`` get their business calendar from the calendars file.
"""

from __future__ import annotations

import os
from pathlib import Path

from leadloop.calendar import CalendarSet
from leadloop.config_file import ConfigFileError, load_yaml
from leadloop.logging import get_logger
from leadloop_assignment.domain.rules import RuleSet, with_calendars

__all__ = ["RuleFile", "load_calendars", "load_rules"]

log = get_logger(__name__)


def load_rules(path: Path, calendars: CalendarSet | None = None) -> RuleSet:
    """The rule set of ``path``; raises ``ConfigFileError`` naming the file and field."""
    rules = load_yaml(path, RuleSet)
    if calendars is None:
        for i, team in enumerate(rules.teams):
            if team.working_hours:
                raise ConfigFileError(
                    path, f"teams.{i}.working_hours", "set, but no calendars file was given"
                )
        return rules
    return with_calendars(rules, calendars)


def load_calendars(path: Path) -> CalendarSet:
    """The calendars of ``path``; raises ``ConfigFileError`` naming the file and field."""
    return load_yaml(path, CalendarSet)


class RuleFile:
    def __init__(self, path: Path, calendars: CalendarSet | None = None) -> None:
        self._path = path
        self._calendars = calendars
        try:
            # Before reading: a change made while the file is read is loaded on the next look.
            self._mtime = os.stat(path).st_mtime_ns
        except OSError as exc:
            raise ConfigFileError(path, "", f"cannot read ({exc.strerror})") from None
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
            except ConfigFileError as exc:
                # The message names the file and the fields, never a value.
                log.error("rules_reload_refused", error=str(exc), version=self._rules.version)
            else:
                log.info("rules_reloaded", old=self._rules.version, new=rules.version)
                self._rules = rules
        return self._rules
