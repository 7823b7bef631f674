"""Assignment's settings (environment, ``LEADLOOP_`` prefix)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from leadloop.settings import HttpSettings, ServiceSettings

__all__ = ["AssignmentSettings"]


class AssignmentSettings(ServiceSettings):
    http: HttpSettings = HttpSettings(port=18082)
    #: The rule set (teams, reps, rules); reloaded live when it changes.
    rules_file: Path = Path("config/rules.yaml")
    #: Business calendars; a team with ``working_hours`` assigns inside its calendar's
    #: working time only.
    calendars_file: Path = Path("config/calendars.yaml")
    #: How long the leads.accepted agent waits to fill a batch: a lead is decided within
    #: milliseconds when traffic is light, and under load batches grow by themselves
    #: (whatever arrived while the previous batch was decided).
    decide_within_s: Annotated[float, Field(gt=0, le=10)] = 0.01
    #: How often pools are checked for leads a rep may now take (time makes reps
    #: eligible: working hours begin, a new day lifts daily caps).
    pool_check_seconds: Annotated[float, Field(gt=0)] = 2.0
