"""The rule set from a YAML file, reloaded live when the file changes.

A change takes effect for leads decided after it; a file that fails validation is
refused (the previous rule set stays in force) and the refusal is logged.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from leadloop.logging import get_logger
from leadloop_assignment.domain.rules import RuleSet

__all__ = ["RuleFile", "load_rules"]

log = get_logger(__name__)


def load_rules(path: Path) -> RuleSet:
    with path.open(encoding="utf-8") as f:
        return RuleSet.model_validate(yaml.safe_load(f))


class RuleFile:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._mtime = os.stat(path).st_mtime_ns
        self._rules = load_rules(path)

    def current(self) -> RuleSet:
        try:
            mtime = os.stat(self._path).st_mtime_ns
        except OSError:
            return self._rules
        if mtime != self._mtime:
            self._mtime = mtime
            try:
                rules = load_rules(self._path)
            except (ValidationError, yaml.YAMLError, OSError) as exc:
                log.error(
                    "rules_reload_refused", error=type(exc).__name__, version=self._rules.version
                )
            else:
                log.info("rules_reloaded", old=self._rules.version, new=rules.version)
                self._rules = rules
        return self._rules
