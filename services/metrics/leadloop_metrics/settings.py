"""metrics' settings (environment, ``LEADLOOP_`` prefix)."""

from __future__ import annotations

from pathlib import Path

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
