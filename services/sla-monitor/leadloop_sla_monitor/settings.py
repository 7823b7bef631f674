"""sla-monitor's settings (environment, ``LEADLOOP_`` prefix)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

from pydantic import AwareDatetime, Field

from leadloop.settings import HttpSettings, ServiceSettings

__all__ = ["SlaSettings"]


class SlaSettings(ServiceSettings):
    http: HttpSettings = HttpSettings(port=18083)
    #: SLA policies, their escalation ladders and which steps page on-call.
    policies_file: Path = Path("config/sla.yaml")
    #: Business calendars per team (time zone, working hours, holidays, make-up days).
    calendars_file: Path = Path("config/calendars.yaml")
    #: How often due clocks are looked for; a step fires at most this late. An idle
    #: tick is one index probe of the partial due-time index (nothing due: no rows).
    tick_seconds: Annotated[float, Field(gt=0, le=60)] = 0.1
    #: Alertmanager's base URL (API v2), e.g. http://127.0.0.1:19094. Unset: no paging.
    alertmanager_url: str | None = None
    #: How often pending on-call deliveries are looked for.
    alert_poll_seconds: Annotated[float, Field(gt=0, le=60)] = 0.5
    #: A wall clock ahead of the monotonic one by more than this between two ticks is a
    #: jump: the reassign / return_to_pool steps it made due wait (docs/reliability.md).
    clock_jump_threshold_seconds: Annotated[float, Field(gt=0)] = 300.0
    #: How long those steps wait before they fire after all (0: they do not wait).
    clock_jump_hold_seconds: Annotated[float, Field(ge=0)] = 1800.0
    #: reassign / return_to_pool steps per team per minute, per worker (0: no cap);
    #: the rest fire in the next minutes, after an outage as after a jump.
    taking_actions_per_minute: Annotated[int, Field(ge=0)] = 500
    #: Test only: service time runs this many times faster than real time ...
    test_time_scale: Annotated[float, Field(gt=0, le=1_000_000)] = 1.0
    #: ... starting from this instant (default: the real time at start-up).
    test_time_origin: AwareDatetime | None = None

    def accelerated(self) -> bool:
        return self.test_time_scale != 1.0 or self.test_time_origin is not None

    def origin(self) -> datetime | None:
        return self.test_time_origin
