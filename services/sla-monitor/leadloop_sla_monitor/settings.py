"""sla-monitor's settings (environment, ``LEADLOOP_`` prefix)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from leadloop.settings import HttpSettings, ServiceSettings

__all__ = ["SlaSettings"]


class SlaSettings(ServiceSettings):
    http: HttpSettings = HttpSettings(port=18083)
    #: SLA policies and their escalation ladders.
    policies_file: Path = Path("config/sla.yaml")
    #: Business calendars per team (time zone, working hours, holidays, make-up days).
    calendars_file: Path = Path("config/calendars.yaml")
    #: How often due clocks are looked for; a step fires at most this late.
    tick_seconds: Annotated[float, Field(gt=0, le=60)] = 0.5
