"""metrics' settings (environment, ``LEADLOOP_`` prefix)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from leadloop.settings import HttpSettings, ServiceSettings

__all__ = ["MetricsSettings"]


class MetricsSettings(ServiceSettings):
    http: HttpSettings = HttpSettings(port=18084)
    #: How often the served totals are re-read from PostgreSQL (covers other workers).
    refresh_seconds: float = 2.0
    #: Channel ids served as `source` label values; any other source is `other`.
    sources: tuple[str, ...] = ("web_form", "lead_ads", "wechat", "trade_show_csv", "referral")
    #: Team ids served as `team` label values; any other team is `other`. Unset: the
    #: team ids of ``rules_file`` (read at start; a team added later shows as `other`
    #: until the service restarts).
    teams: tuple[str, ...] | None = None
    #: Read at start: the teams (unless ``teams`` is set) and the roster, whose rep ids
    #: are the `rep` label values (any other rep is `other`; a rep who joins through
    #: crm.reps shows as `other` until the service restarts).
    rules_file: Path = Path("config/rules.yaml")
    #: A lead owned and open that nobody moved (assignment, touch, stage change) since
    #: the start of this many working days of its team's calendar is `silent` in the
    #: leak ledger (0: never).
    silent_after_business_days: Annotated[int, Field(ge=0, le=365)] = 5
    calendars_file: Path = Path("config/calendars.yaml")
    #: How often this worker looks for leads that went silent.
    silence_sweep_seconds: Annotated[float, Field(gt=0)] = 60.0
    #: How often this worker looks whether a forecast snapshot is due (00:00 UTC on the
    #: 1st and every Monday).
    forecast_seconds: Annotated[float, Field(gt=0)] = 60.0
    #: How many closed leads the fixed stage table is worth when a team's P(won | stage)
    #: is learned from its own history (domain/forecast.py).
    forecast_strength: Annotated[float, Field(gt=0)] = 10.0
    #: How often the forecast series are set again between snapshots (late wins change
    #: the last closed month's accuracy).
    forecast_refresh_seconds: Annotated[float, Field(gt=0)] = 3600.0
